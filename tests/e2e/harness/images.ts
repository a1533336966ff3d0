// The images the e2e tier needs, built locally because no registry is reachable: a Debian base made
// with debootstrap and `docker import` (cached as a tarball outside the repo), and small stand-ins
// for the official postgres, redis, mosquitto and caddy images built FROM it.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, mkdirSync, copyFileSync, cpSync, rmSync, renameSync, writeFileSync, chmodSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { $ } from 'zx';
import { withLock } from '../../../lib/core/lock.ts';
import { cacheDir } from './engine.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const suite = 'bookworm';
/** What the stand-ins run, plus the tools healthchecks in compose files commonly call. */
const packages = ['postgresql-15', 'redis-server', 'mosquitto', 'mosquitto-clients', 'python3', 'git', 'curl', 'wget', 'procps', 'ca-certificates'];
const recipe = `v1 ${suite} ${packages.join(',')}`;
export const baseHash = createHash('sha256').update(recipe).digest('hex').slice(0, 12);
export const baseImage = `makapix-e2e/base:${baseHash}`;
/** The fixed name Dockerfiles use (FROM cannot take the hash without a build arg the app's compose lacks). */
export const baseAlias = 'makapix-e2e/base:current';
const quiet = $({ quiet: true });
const legacyBuild = { ...process.env, DOCKER_BUILDKIT: '0' };

/** The Debian mirror this machine reaches (the only route to Debian's packages here). */
export function debianMirror(sources: string[]): string {
  for (const text of sources) {
    const deb822 = /^URIs:\s*(\S+)/m.exec(text);
    if (deb822 && /^Suites:.*\bbookworm\b/m.test(text)) return deb822[1]!.replace(/\/$/, '');
    const classic = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+bookworm\s/m.exec(text);
    if (classic) return classic[1]!.replace(/\/$/, '');
  }
  return 'http://deb.debian.org/debian';
}

function systemSources(): string[] {
  const dir = '/etc/apt/sources.list.d';
  const files = ['/etc/apt/sources.list', ...(existsSync(dir) ? readdirSync(dir).filter((f) => /\.(list|sources)$/.test(f)).map((f) => path.join(dir, f)) : [])];
  return files.filter(existsSync).map((f) => readFileSync(f, 'utf8'));
}

const imageExists = async (ref: string) => (await $({ nothrow: true, quiet: true })`docker image inspect ${ref}`).exitCode === 0;

async function buildRootfsTarball(tarball: string, log: (m: string) => void): Promise<void> {
  const mirror = debianMirror(systemSources());
  const rootfs = path.join(cacheDir, `rootfs-${baseHash}`);
  rmSync(rootfs, { recursive: true, force: true });
  log(`debootstrap ${suite} from ${mirror}`);
  await quiet`debootstrap --variant=minbase ${suite} ${rootfs} ${mirror}`;
  try {
    writeFileSync(path.join(rootfs, 'etc/apt/sources.list'), `deb ${mirror} ${suite} main\n`);
    // Packages' maintainer scripts must not try to start services inside the chroot.
    writeFileSync(path.join(rootfs, 'usr/sbin/policy-rc.d'), '#!/bin/sh\nexit 101\n');
    chmodSync(path.join(rootfs, 'usr/sbin/policy-rc.d'), 0o755);
    log(`installing ${packages.join(' ')}`);
    await $({ quiet: true, env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } })`chroot ${rootfs} apt-get install -y -q --no-install-recommends ${packages}`;
    await quiet`chroot ${rootfs} apt-get clean`;
    // The package's own cluster is not used: the postgres stand-in initialises $PGDATA itself.
    for (const p of ['var/lib/apt/lists', 'var/lib/postgresql/15', 'etc/postgresql/15/main', 'usr/sbin/policy-rc.d']) rmSync(path.join(rootfs, p), { recursive: true, force: true });
    const tmp = `${tarball}.tmp`;
    await quiet`tar -C ${rootfs} -cf ${tmp} .`;
    renameSync(tmp, tarball);
  } finally {
    rmSync(rootfs, { recursive: true, force: true });
  }
}

/** Older builds of an image (its recipe changed): removed, so the cache does not grow run after run. */
async function removeOtherTags(repo: string, keep: string): Promise<void> {
  const tags = (await $({ quiet: true, nothrow: true })`docker images ${repo} --format {{.Repository}}:{{.Tag}}`).stdout.split('\n').filter(Boolean);
  for (const t of tags) if (t !== keep && t !== baseAlias) await $({ quiet: true, nothrow: true })`docker rmi ${t}`;
}

/** The base image: reused when present, imported from the cached tarball, or built from scratch. */
export async function ensureBaseImage(log: (m: string) => void = () => {}): Promise<string> {
  mkdirSync(cacheDir, { recursive: true });
  await withLock(path.join(cacheDir, 'images.lock'), 'e2e image build', async () => {
    if (!(await imageExists(baseImage))) {
      const tarball = path.join(cacheDir, `base-${baseHash}.tar`);
      if (!existsSync(tarball)) await buildRootfsTarball(tarball, log);
      log(`docker import ${tarball}`);
      await quiet`docker import --change ${'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'} --change ${'CMD ["/bin/bash"]'} ${tarball} ${baseImage}`;
    }
    await quiet`docker tag ${baseImage} ${baseAlias}`;
    await removeOtherTags('makapix-e2e/base', baseImage);
    for (const f of readdirSync(cacheDir)) if (/^base-[0-9a-f]+\.tar$/.test(f) && f !== `base-${baseHash}.tar`) rmSync(path.join(cacheDir, f));
  });
  return baseImage;
}

function hashDir(dir: string, h = createHash('sha256')): ReturnType<typeof createHash> {
  for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const p = path.join(dir, e.name);
    h.update(e.name);
    if (e.isDirectory()) hashDir(p, h);
    else h.update(readFileSync(p));
  }
  return h;
}

export type StandIn = 'postgres' | 'redis' | 'mosquitto' | 'vault' | 'prober' | 'node';
const standIns: StandIn[] = ['postgres', 'redis', 'mosquitto', 'vault', 'prober', 'node'];

/** Builds (or reuses) every stand-in image; returns their references by name. */
export async function ensureStandInImages(log: (m: string) => void = () => {}): Promise<Record<StandIn, string>> {
  await ensureBaseImage(log);
  const refs = {} as Record<StandIn, string>;
  await withLock(path.join(cacheDir, 'images.lock'), 'e2e image build', async () => {
    for (const name of standIns) {
      const src = path.join(here, 'standins', name);
      const ref = `makapix-e2e/${name}:${hashDir(src, createHash('sha256').update(baseHash)).digest('hex').slice(0, 12)}`;
      refs[name] = ref;
      await removeOtherTags(`makapix-e2e/${name}`, ref);
      if (await imageExists(ref)) continue;
      log(`docker build ${ref}`);
      const ctx = mkdtempSync(path.join(tmpdir(), `makapix-e2e-${name}-`));
      try {
        cpSync(src, ctx, { recursive: true });
        if (name === 'vault') copyFileSync('/usr/bin/caddy', path.join(ctx, 'caddy'));
        if (name === 'node') copyFileSync(process.execPath, path.join(ctx, 'node'));
        await $({ quiet: true, env: legacyBuild })`docker build -q -t ${ref} ${ctx}`;
      } finally {
        rmSync(ctx, { recursive: true, force: true });
      }
    }
  });
  return refs;
}
