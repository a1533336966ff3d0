// What a production host holds before `up-prod` or `cutover-prod` touch it, decided from what Docker
// reports (containers with their labels and volumes), never from a project name alone: the app's own
// production stack (fabkury/makapix, deploy/stack/) is ALSO called `makapix-prod` and uses the same
// container names as ours, plus services we do not define (its Caddy, `www-redirect`, `redis`).
// A blanket `--remove-orphans` would delete those, so the toolkit never passes it: it recognises the
// layout and either moves it (cutover-prod) or refuses, listing what it found.
import type { SeenContainer } from '../tools/docker.ts';

export type { SeenContainer };

/** The migration plan's old single-environment project (docs/RUNBOOK.md, phase 0). */
export const planProject = 'makapix';

/** The label every service of the toolkit's compose files carries (compose/docker-compose.yml). */
export const managedLabel = 'club.makapix.ops.managed';
export const projectLabel = 'com.docker.compose.project';
export const serviceLabel = 'com.docker.compose.service';

/**
 * The app's Caddy keeps its certificates in these external volumes (deploy/stack/docker-compose.yml
 * of the app: `makapix-stack_caddy_data`, `makapix-stack_caddy_config`): the surest sign of it.
 */
export const appCaddyVolumes = { data: 'makapix-stack_caddy_data', config: 'makapix-stack_caddy_config' } as const;
/** The edge project's own volumes when no certificate volume exists yet (caddy/docker-compose.edge.yml). */
export const edgeCaddyVolumes = { data: 'makapix-edge-caddy-data', config: 'makapix-edge-caddy-config' } as const;

export type LayoutKind =
  /** Nothing of production runs yet: a fresh host. */
  | 'empty'
  /** Only containers the toolkit defines (a previous up-prod). */
  | 'toolkit'
  /** The migration plan's starting point: one compose project `makapix` (its db holds production). */
  | 'plan-single'
  /** The app's current production: project makapix-prod with Caddy inside (caddy-docker-proxy). */
  | 'app-prod-with-caddy'
  /** Containers of makapix-prod the toolkit does not define and cannot place: refuse. */
  | 'unknown';

export interface Layout {
  kind: LayoutKind;
  /** One line per relevant container: name, project/service, state, what gave it away. */
  found: string[];
  /** The old stack's containers (plan-single, app-prod-with-caddy), running ones first. */
  old: SeenContainer[];
  /** The app's Caddy, when there is one (it holds ports 80/443 and the certificates). */
  caddy?: SeenContainer;
  /** Containers in makapix-prod that no service of ours defines (never removed by the toolkit). */
  foreign: SeenContainer[];
}

/** The app's Caddy: its certificate volumes or its image; the edge project's own Caddy (which may reuse those volumes) is not it. */
const isAppCaddy = (c: SeenContainer, edgeProject: string) =>
  c.labels[projectLabel] !== edgeProject &&
  (c.volumes.includes(appCaddyVolumes.data) || c.volumes.includes(appCaddyVolumes.config) || /caddy-docker-proxy/.test(c.image));

const describe = (c: SeenContainer, why?: string) =>
  `${c.name} (${c.labels[projectLabel] ? `project ${c.labels[projectLabel]}${c.labels[serviceLabel] ? `, service ${c.labels[serviceLabel]}` : ''}` : 'no compose project'}; ${c.running ? 'running' : 'stopped'}${why ? `; ${why}` : ''})`;

/**
 * Classifies a host. `ourServices` are the services of the toolkit's production compose (what
 * Compose would recreate); `project` is ours (makapix-prod) and `planProject` the migration plan's
 * old single project (makapix, production only); `edgeProject` the shared edge proxy's (makapix-edge).
 */
export function classifyLayout(containers: readonly SeenContainer[], o: { project: string; planProject?: string; edgeProject: string; ourServices: readonly string[] }): Layout {
  const inProject = containers.filter((c) => c.labels[projectLabel] === o.project);
  const caddy = containers.find((c) => isAppCaddy(c, o.edgeProject));
  const plan = o.planProject ? containers.filter((c) => c.labels[projectLabel] === o.planProject) : [];
  const unmanaged = inProject.filter((c) => c.labels[managedLabel] !== 'true' && c !== caddy);
  const foreign = inProject.filter((c) => !o.ourServices.includes(c.labels[serviceLabel] ?? '') && c !== caddy);
  const byState = (a: SeenContainer, b: SeenContainer) => Number(b.running) - Number(a.running) || a.name.localeCompare(b.name);

  if (caddy && (caddy.running || unmanaged.some((c) => c.running))) {
    const old = [...new Set([caddy, ...unmanaged, ...foreign])].sort(byState);
    const found = old.map((c) =>
      describe(c, c === caddy ? `the app's Caddy (${c.volumes.filter((v) => v.startsWith('makapix-stack_')).join(', ') || c.image})` : !o.ourServices.includes(c.labels[serviceLabel] ?? '') ? 'not defined by the toolkit' : 'created by the app\'s compose'),
    );
    return { kind: 'app-prod-with-caddy', found, old, caddy, foreign };
  }
  if (plan.some((c) => c.running)) {
    const old = [...plan].sort(byState);
    return { kind: 'plan-single', found: old.map((c) => describe(c, 'the old single stack')), old, foreign, ...(caddy && { caddy }) };
  }
  const runningUnknown = [...unmanaged, ...foreign].filter((c) => c.running);
  if (runningUnknown.length) {
    const list = [...new Set(runningUnknown)].sort(byState);
    return { kind: 'unknown', found: list.map((c) => describe(c, c.labels[managedLabel] !== 'true' ? 'not created by the toolkit' : 'not defined by the toolkit')), old: list, foreign, ...(caddy && { caddy }) };
  }
  const ours = inProject.filter((c) => c.labels[managedLabel] === 'true');
  // Stopped leftovers (the old stack kept for a rollback) are listed, never touched.
  const leftovers = [...new Set([...(caddy ? [caddy] : []), ...plan, ...unmanaged, ...foreign])].sort(byState);
  return {
    kind: ours.length ? 'toolkit' : 'empty',
    found: leftovers.map((c) => describe(c, 'left alone')),
    old: leftovers,
    foreign,
    ...(caddy && { caddy }),
  };
}

/** What `up-prod` does with a layout: go on, or refuse (exit 3) with the reason and the next step. */
export function upDecision(layout: Layout): { ok: true; notes: string[] } | { ok: false; reason: string; next: string } {
  switch (layout.kind) {
    case 'empty':
    case 'toolkit':
      return { ok: true, notes: layout.found.length ? [`not the toolkit's, left alone: ${layout.found.join('; ')}`] : [] };
    case 'app-prod-with-caddy':
      return {
        ok: false,
        reason: `This host runs the app's own production stack with Caddy inside: ${layout.found.join('; ')}. up-prod would replace its containers while its Caddy keeps ports 80/443.`,
        next: 'Move it with make cutover-prod (it hands Caddy over to the edge project and reuses its certificates); nothing was changed.',
      };
    case 'plan-single':
      return {
        ok: false,
        reason: `The old single-environment stack still runs: ${layout.found.join('; ')}. Two databases on one volume would corrupt it.`,
        next: 'Move it with make cutover-prod; nothing was changed.',
      };
    case 'unknown':
      return {
        ok: false,
        reason: `Containers of the production project that the toolkit did not create are running: ${layout.found.join('; ')}.`,
        next: 'Stop the ones you no longer want by name (docker stop <name>) or move them with make cutover-prod; the toolkit never removes a container it does not define. Nothing was changed.',
      };
  }
}

/**
 * The certificate volumes the edge Caddy uses: its own when they exist (it ran before), else the
 * app's Caddy's (moving Caddy re-issues no certificate: Let's Encrypt rate-limits re-issuance of
 * every host), else its own names, to be created.
 */
export function edgeVolumes(existing: readonly string[]): { data: string; config: string; reused: boolean } {
  if (existing.includes(edgeCaddyVolumes.data)) return { ...edgeCaddyVolumes, reused: false };
  if (existing.includes(appCaddyVolumes.data)) return { ...appCaddyVolumes, reused: true };
  return { ...edgeCaddyVolumes, reused: false };
}
