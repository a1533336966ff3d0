// mqtt-certs list once the CRL's next update has passed (issue 20): the broker then refuses every
// device, so list says the CRL expired and exits non-zero, instead of "near" and 0.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { projectRoot, composeDir } from '../../lib/core/paths.ts';
import { certsLayout } from '../../lib/domain/pki.ts';
import { runCommand } from '../harness/server.ts';

const root = mkdtempSync(path.join(tmpdir(), 'mqtt-crl-'));
const envDir = path.join(root, 'env');
const certs = path.join(root, 'certs');
const script = path.join(projectRoot, 'scripts', 'mqtt-certs.ts');
const run = (args: string[]) => runCommand(script, args, { env: { ...process.env, MAKAPIX_ENV_DIR: envDir } });

test.before(() => {
  spawnSync('mkdir', ['-p', envDir]);
  for (const env of ['dev', 'prod'] as const) {
    const example = readFileSync(path.join(composeDir, `.env.${env}.example`), 'utf8');
    const overrides: Record<string, string> = { MQTT_CERTS_DIR: env === 'dev' ? certs : path.join(root, 'ea-certs'), MQTT_BROKER_UID: String(process.getuid!()) };
    const lines = example.split('\n').filter((l) => !Object.keys(overrides).some((k) => l.startsWith(`${k}=`)));
    writeFileSync(path.join(envDir, `.env.${env}`), `${lines.join('\n')}\n${Object.entries(overrides).map(([k, v]) => `${k}=${v}`).join('\n')}\n`);
  }
});

test('a CRL past its next update: list says EXPIRED and exits 1; a fresh one: exit 0', async () => {
  const init = await run(['init', '--env', 'dev']);
  assert.is(init.code, 0, init.err);
  const fresh = await run(['list', '--env', 'dev']);
  assert.is(fresh.code, 0, fresh.err);
  assert.not.match(fresh.out, /EXPIRED|expired/);
  // A CRL whose next update comes one second after it is made, by the CA's own configuration.
  const layout = certsLayout(certs);
  const gen = spawnSync('openssl', ['ca', '-batch', '-config', layout.cnf, '-gencrl', '-crlsec', '1', '-out', layout.crl], { encoding: 'utf8' });
  assert.is(gen.status, 0, gen.stderr);
  await new Promise((r) => setTimeout(r, 2100));
  const r = await run(['list', '--env', 'dev']);
  assert.is(r.code, 1, `${r.out}\n${r.err}`);
  assert.match(r.out, /next update .*\(EXPIRED\)/);
  assert.match(r.out, /WARNING: the CRL expired: its next update .* has passed/);
  assert.not.match(r.out, /is near/);
  const json = await run(['list', '--env', 'dev', '--json']);
  assert.is(json.code, 1);
  assert.is(JSON.parse(json.out).crl.expired, true);
  const renew = await run(['renew', '--env', 'dev']);
  assert.is(renew.code, 0, renew.err);
  assert.is((await run(['list', '--env', 'dev'])).code, 0);
});

test.after(() => rmSync(root, { recursive: true, force: true }));
test.run();
