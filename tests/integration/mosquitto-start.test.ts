// compose/mosquitto/start.sh, the broker's entrypoint, run as it is with the real mosquitto_passwd:
// it sets the app's account from the environment and KEEPS the players the api provisioned into the
// same file (the app's MQTT_PASSWD_FILE), so a broker restart does not lock every player out.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { composeDir } from '../../lib/core/paths.ts';
import { onExit } from '../../dev/cleanup.ts';

const work = mkdtempSync(path.join(tmpdir(), 'mosquitto-start-'));
onExit(() => rmSync(work, { recursive: true, force: true }));
const file = path.join(work, 'passwords');
const script = path.join(composeDir, 'mosquitto', 'start.sh');

/** Runs the entrypoint; the final `exec mosquitto` fails here (no /mosquitto/config), after the file is written. */
const start = (password: string) =>
  spawnSync('sh', [script], { env: { PATH: process.env.PATH, MQTT_PASSWORD: password, MQTT_BACKEND_USER: 'svc_backend', MOSQUITTO_PASSWORD_FILE: file }, encoding: 'utf8', timeout: 10_000 });
const users = () => readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => l.split(':')[0]);
const hashOf = (user: string) => readFileSync(file, 'utf8').split('\n').find((l) => l.startsWith(`${user}:`));

test('the first start creates the file with the app account only, the password never in clear', () => {
  start('first-password-123');
  assert.ok(existsSync(file));
  assert.equal(users(), ['svc_backend']);
  assert.not.match(readFileSync(file, 'utf8'), 'first-password-123');
});

test('a restart keeps the players the api added and changes only the app account', () => {
  // What the api does when it provisions a player (api/app/routers/player.py of the app).
  assert.is(spawnSync('mosquitto_passwd', ['-b', file, 'player-7f3c', ''], { encoding: 'utf8' }).status, 0);
  const player = hashOf('player-7f3c');
  const before = hashOf('svc_backend');
  start('second-password-456');
  assert.equal(users().sort(), ['player-7f3c', 'svc_backend']);
  assert.is(hashOf('player-7f3c'), player, 'the provisioned player is untouched');
  assert.is.not(hashOf('svc_backend'), before, 'the app account has the new password');
});

test.run();
