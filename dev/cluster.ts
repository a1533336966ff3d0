import { mkdir, writeFile, rm, readFile, chmod } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { run } from '../lib/core/exec.ts';
import pg from 'pg';
import { Secret } from '../lib/core/secret.ts';
import { JobError } from '../lib/core/errors.ts';
import { freePort } from './ports.ts';

/** PostgreSQL server binaries; the sandbox and the tests run the cluster version Debian 12 ships. */
export const pgBin = process.env.PG_BIN ?? '/usr/lib/postgresql/15/bin';

/** initdb refuses to run as root, so as root the cluster belongs to this OS user. */
const clusterOsUser = process.env.PG_OS_USER ?? 'postgres';
export const asClusterUser = (): string[] => (process.getuid?.() === 0 ? ['runuser', '-u', clusterOsUser, '--'] : []);

export interface Cluster {
  readonly dir: string;
  readonly host: '127.0.0.1';
  readonly port: number;
  readonly superuser: string;
  readonly password: Secret;
  /** node-postgres settings for a database of this cluster, password included (never a URL string). */
  connection(database?: string): pg.ClientConfig;
  stop(): Promise<void>;
}

export interface ClusterOptions {
  /** The data directory; created and initialised when it holds no cluster yet. */
  dir: string;
  superuser?: string;
  password?: Secret;
  /** Extra server settings, e.g. { max_connections: '20' }. */
  settings?: Record<string, string>;
}

async function runAsClusterUser(argv: string[]): Promise<void> {
  const [cmd, ...rest] = [...asClusterUser(), ...argv] as [string, ...string[]];
  const r = await run({ cmd, argv: rest }, { nothrow: true });
  if (r.exitCode !== 0) throw Object.assign(new Error(r.stderr || `${cmd} exited ${r.exitCode}`), { stderr: r.stderr });
}

async function initdb(dir: string, superuser: string, password: Secret): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const pwfile = path.join(dir, '..', `.${path.basename(dir)}.pw`);
  await writeFile(pwfile, `${password.reveal()}\n`, { mode: 0o600 });
  try {
    if (process.getuid?.() === 0) await run({ cmd: 'chown', argv: [clusterOsUser, dir, pwfile] });
    await runAsClusterUser([path.join(pgBin, 'initdb'), '-D', dir, '-U', superuser, `--pwfile=${pwfile}`, '--auth=scram-sha-256', '-E', 'UTF8', '--locale=C.UTF-8', '--no-sync']).catch((err: Error) => {
      const said = ((err as { stderr?: string }).stderr ?? err.message).trim().split('\n').slice(-2).join(' / ');
      throw new JobError(`initdb could not create a cluster in ${dir}: ${said}.`, `Every folder above ${dir} must be enterable by the OS user "${process.getuid?.() === 0 ? clusterOsUser : 'you'}" (e.g. not under /root); choose another folder.`);
    });
  } finally {
    await rm(pwfile, { force: true });
  }
}

const portInUse = (log: string) => /could not bind|Address already in use|could not create any TCP\/IP sockets/i.test(log);

/**
 * Starts (initialising if needed) a cluster on a free loopback port. It listens on 127.0.0.1 only
 * and proves the server it reaches is its own (data_directory), never someone else's on that port.
 */
export async function startCluster(opts: ClusterOptions): Promise<Cluster> {
  const dir = path.resolve(opts.dir);
  const superuser = opts.superuser ?? 'owner';
  const password = opts.password ?? new Secret('sandbox-owner-password');
  if (!existsSync(path.join(dir, 'PG_VERSION'))) await initdb(dir, superuser, password);
  await chmod(dir, 0o700);
  const logFile = path.join(dir, 'server.log');
  const settings = { listen_addresses: '127.0.0.1', unix_socket_directories: dir, fsync: 'off', ...opts.settings };
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const serverArgs = [`-p ${port}`, ...Object.entries(settings).map(([k, v]) => `-c ${k}=${v}`)].join(' ');
    try {
      await runAsClusterUser([path.join(pgBin, 'pg_ctl'), '-D', dir, '-l', logFile, '-o', serverArgs, '-w', '-t', '60', 'start']);
    } catch (err) {
      const log = await readFile(logFile, 'utf8').catch(() => '');
      if (attempt < 5 && portInUse(log.slice(-2000))) continue;
      throw new JobError(`PostgreSQL in ${dir} did not start: ${log.trim().split('\n').slice(-3).join(' / ') || (err as Error).message}.`, `Read ${logFile}.`);
    }
    const cluster: Cluster = {
      dir,
      host: '127.0.0.1',
      port,
      superuser,
      password,
      connection: (database = 'postgres') => ({ host: '127.0.0.1', port, user: superuser, password: password.reveal(), database }),
      stop: () => stopCluster(dir),
    };
    const client = new pg.Client(cluster.connection());
    await client.connect();
    try {
      const { rows } = await client.query<{ data_directory: string }>('SHOW data_directory');
      if (path.resolve(rows[0]!.data_directory) !== dir) throw new JobError(`Port ${port} is served by another PostgreSQL (${rows[0]!.data_directory}), not the one in ${dir}.`);
    } finally {
      await client.end();
    }
    return cluster;
  }
}

export async function stopCluster(dir: string): Promise<void> {
  if (!existsSync(path.join(dir, 'postmaster.pid'))) return;
  await runAsClusterUser([path.join(pgBin, 'pg_ctl'), '-D', dir, '-m', 'fast', '-w', 'stop']).catch(() => undefined);
}

/** Runs fn with a client on one database of a cluster, closed afterwards whatever happens. */
export async function withClient<T>(c: Cluster, db: string, fn: (cl: pg.Client) => Promise<T>): Promise<T> {
  const cl = new pg.Client(c.connection(db));
  await cl.connect();
  try {
    return await fn(cl);
  } finally {
    await cl.end();
  }
}
