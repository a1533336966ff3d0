// The brokers' topic rights (compose/mosquitto/acls, following the app's mqtt/config/acls) in the
// real Mosquitto (Debian's 2.0) running the project's mosquitto.conf on loopback. Players connect
// as the app's do: mutual TLS with a certificate whose CN is their player_key (a UUID), which
// becomes their MQTT user name; the backend logs in on the in-network listener as svc_backend.
// MQTT 5 so that a refused publish is visible (PUBACK reason code 0x87) instead of silently dropped.
//
// Ordering makes the "never received" assertions exact, without sleeps: Mosquitto routes a QoS 1
// publish to every subscriber before it acknowledges it, and delivers to one subscriber in order,
// so once a later control message has arrived, an earlier forbidden one would have arrived first.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomUUID } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { makeCerts, startMosquitto, type Broker } from '../harness/mosquitto.ts';
import { onExit } from '../../dev/cleanup.ts';

const work = mkdtempSync(path.join(tmpdir(), 'mqtt-acl-test-'));
chmodSync(work, 0o755); // the broker drops root for its own user before reading the certificates
const certs = path.join(work, 'certs');
const clients: MqttClient[] = [];
let broker: Broker | undefined;
onExit(() => {
  for (const c of clients) c.end(true);
  broker?.stop();
  rmSync(work, { recursive: true, force: true });
});

// The app's naming: a player's certificate CN (and so its MQTT user) is its player_key.
const playerA = randomUUID();
const playerB = randomUUID();
const backend = { user: 'svc_backend', password: 'backend-password-1' };
const topic = (player: string, rest: string) => `makapix/player/${player}/${rest}`;

interface Received {
  topic: string;
  payload: string;
  retain: boolean;
}

interface Session {
  client: MqttClient;
  received: Received[];
  /** Resolves once a message on `t` with `payload` has arrived (or already had). */
  waitFor(t: string, payload: string): Promise<void>;
}

function session(client: MqttClient): Promise<Session> {
  clients.push(client);
  const received: Received[] = [];
  const waiters: (() => void)[] = [];
  client.on('message', (t, body, packet) => {
    received.push({ topic: t, payload: body.toString(), retain: packet.retain });
    for (const w of waiters.splice(0)) w();
  });
  const waitFor = (t: string, payload: string) =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no message ${t}=${payload} within 10 s; got ${JSON.stringify(received)}`)), 10_000);
      const check = () => {
        if (received.some((m) => m.topic === t && m.payload === payload)) {
          clearTimeout(timer);
          resolve();
        } else waiters.push(check);
      };
      check();
    });
  return new Promise((resolve, reject) => {
    client.once('connect', () => resolve({ client, received, waitFor }));
    client.once('error', reject);
  });
}

const common = { protocolVersion: 5 as const, reconnectPeriod: 0, connectTimeout: 5000 };

function player(key: string): Promise<Session> {
  return session(
    mqtt.connect(`mqtts://127.0.0.1:${broker!.port}`, {
      ...common,
      clientId: `player-${key}`,
      servername: 'localhost',
      ca: readFileSync(path.join(certs, 'ca.crt')),
      cert: readFileSync(path.join(certs, 'devices', `${key}.crt`)),
      key: readFileSync(path.join(certs, 'devices', `${key}.key`)),
      rejectUnauthorized: true,
    }),
  );
}

const backendSession = () => session(mqtt.connect(`mqtt://127.0.0.1:${broker!.plainPort}`, { ...common, clientId: `api-${randomUUID()}`, username: backend.user, password: backend.password }));

function subscribe(s: Session, filter: string): Promise<void> {
  return new Promise((resolve, reject) => s.client.subscribe(filter, { qos: 1 }, (err) => (err ? reject(err) : resolve())));
}

/** Publishes at QoS 1; resolves with the PUBACK's verdict: "ok" or the broker's reason code. */
function publish(s: Session, t: string, payload: string, retain = false): Promise<string> {
  return new Promise((resolve) => s.client.publish(t, payload, { qos: 1, retain }, (err) => resolve(err ? `refused (${(err as { code?: number }).code ?? err.message})` : 'ok')));
}

test('setup: device certificates with a player_key CN, the backend account, the project broker with its ACL', async () => {
  await makeCerts('prod', certs, 'localhost', [playerA, playerB]);
  broker = await startMosquitto(certs, undefined, [backend]);
});

test("a player subscribed to # gets its own command, never another player's command, response or ack", async () => {
  const [a, b, api] = [await player(playerA), await player(playerB), await backendSession()];
  await subscribe(a, '#');
  await subscribe(b, topic(playerB, '#'));
  for (const rest of ['command', 'response/r1', 'view/ack']) assert.is(await publish(api, topic(playerB, rest), `for-b ${rest}`), 'ok', rest);
  // The control, published last: A's own command.
  assert.is(await publish(api, topic(playerA, 'command'), 'for-a'), 'ok');
  await a.waitFor(topic(playerA, 'command'), 'for-a');
  assert.equal(a.received.map((m) => m.topic), [topic(playerA, 'command')], 'player A read another player\'s topic');
  // B did get its own three: the backend's publishes were real.
  await b.waitFor(topic(playerB, 'view/ack'), 'for-b view/ack');
  assert.equal(b.received.map((m) => m.topic).sort(), [topic(playerB, 'command'), topic(playerB, 'response/r1'), topic(playerB, 'view/ack')].sort());
});

test('a player cannot publish as the backend or as another player', async () => {
  const [a, b, api] = [await player(playerA), await player(playerB), await backendSession()];
  await subscribe(a, '#');
  await subscribe(api, topic('+', 'status'));
  await subscribe(api, '$SYS/broker/uptime');
  // Spoofs from B: a backend topic, A's command channel, A's status.
  for (const t of ['makapix/backend/player/announce', topic(playerA, 'command'), topic(playerA, 'status'), 'makapix/post/new/1'])
    assert.is(await publish(b, t, 'spoofed'), 'refused (135)', `${t} was accepted from player B`);
  // Controls: B's own status reaches the backend, the backend's command reaches A.
  assert.is(await publish(b, topic(playerB, 'status'), 'b-online'), 'ok');
  await api.waitFor(topic(playerB, 'status'), 'b-online');
  assert.is(await publish(api, topic(playerA, 'command'), 'after-spoofs'), 'ok');
  await a.waitFor(topic(playerA, 'command'), 'after-spoofs');
  assert.equal(a.received.filter((m) => m.payload === 'spoofed'), [], 'player A received a spoofed message');
  assert.equal(api.received.filter((m) => m.payload === 'spoofed'), [], 'the backend received a spoofed status');
});

test("the backend does what the app's api needs: reads every player report, writes commands, responses and acks", async () => {
  const [a, api] = [await player(playerA), await backendSession()];
  // A player's retained manifest, published before the backend subscribes (player_optional.py reads it so).
  assert.is(await publish(a, topic(playerA, 'capabilities'), 'caps-retained', true), 'ok');
  for (const rest of ['status', 'request/+', 'view', 'capabilities', 'state', 'command/ack']) await subscribe(api, topic('+', rest));
  await api.waitFor(topic(playerA, 'capabilities'), 'caps-retained');
  const reports = ['status', 'request/r7', 'view', 'state', 'command/ack'];
  for (const rest of reports) assert.is(await publish(a, topic(playerA, rest), `report ${rest}`), 'ok', rest);
  for (const rest of reports) await api.waitFor(topic(playerA, rest), `report ${rest}`);
  await subscribe(a, topic(playerA, '#'));
  for (const rest of ['command', 'response/r7', 'view/ack']) assert.is(await publish(api, topic(playerA, rest), `to-a ${rest}`), 'ok', rest);
  for (const rest of ['command', 'response/r7', 'view/ack']) await a.waitFor(topic(playerA, rest), `to-a ${rest}`);
  // Nothing beyond the app's topics, even for the backend.
  assert.is(await publish(api, 'makapix/anything/else', 'x'), 'refused (135)');
});

test('a player round-trips on its own probe topic (make verify) and cannot reach another\'s', async () => {
  const [a, b] = [await player(playerA), await player(playerB)];
  await subscribe(a, `makapix-ops/verify/${playerA}/+`);
  assert.is(await publish(b, `makapix-ops/verify/${playerA}/n1`, 'spoofed'), 'refused (135)');
  assert.is(await publish(a, `makapix-ops/verify/${playerA}/n1`, 'mine'), 'ok');
  await a.waitFor(`makapix-ops/verify/${playerA}/n1`, 'mine');
  assert.equal(a.received.map((m) => m.payload), ['mine']);
});

test.run();
