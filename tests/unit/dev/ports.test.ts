import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createServer } from 'node:net';
import { readFileSync } from 'node:fs';
import { freePort } from '../../../dev/ports.ts';

test("a free port is below the kernel's ephemeral range (no outgoing connection can take it) and a server can listen on it on every address", async () => {
  const [low] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
  const held = createServer();
  try {
    const port = await freePort();
    assert.ok(port >= 20000 && port < low!, `port ${port} is not below ${low}`);
    await new Promise<void>((resolve, reject) => held.once('error', reject).listen({ port, exclusive: true }, resolve));
  } finally {
    held.close();
  }
});

test.run();
