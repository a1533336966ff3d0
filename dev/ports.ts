import { createServer } from 'node:net';
import { randomInt } from 'node:crypto';

// Below Linux's ephemeral range (32768-60999): a port handed out there can be taken, before the
// server binds it, as the local port of any outgoing connection (a Caddy once lost its port so).
const lowest = 20000;
const highest = 32767;

/** Whether nothing listens on the port on any address (a server told `:port` binds them all). */
function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen({ port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/** A TCP port that was free on every address a moment ago; callers must still handle losing a race for it. */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = randomInt(lowest, highest + 1);
    if (await canListen(port)) return port;
  }
  throw new Error(`no free TCP port between ${lowest} and ${highest} after 100 tries`);
}
