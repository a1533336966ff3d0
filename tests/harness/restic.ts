// Offsite repositories for tests: a local restic repository, and an sftp: one served by an OpenSSH
// server started on a loopback high port with a throwaway host key and user key (Debian's
// openssh-server; the system sshd is never started, see the Makefile's ssh_quiet).
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort } from '../../dev/ports.ts';
import { run } from '../../lib/core/exec.ts';
import { resticCommand, type ResticRepo } from '../../lib/tools/restic.ts';
import { onExit } from '../../dev/cleanup.ts';
import { spawnServer, waitForPort, type ServerProcess } from './server.ts';

export interface TestRepo extends ResticRepo {
  /** The folder holding the repository's files (for a local one, the repository itself). */
  files: string;
  /** The scratch folder of it all. */
  dir: string;
}

function scratch(prefix: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  onExit(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A password file of mode 0600 holding a random password. */
export function passwordFile(dir: string, password = `pw-${Math.random().toString(36).slice(2)}-${Date.now()}`): string {
  const file = path.join(dir, 'restic-password');
  writeFileSync(file, `${password}\n`, { mode: 0o600 });
  chmodSync(file, 0o600);
  return file;
}

export async function initRepo(repo: ResticRepo): Promise<void> {
  await run(resticCommand(repo, ['init']));
}

/** A new, initialised local repository with its own cache. */
export async function localRepo(init = true): Promise<TestRepo> {
  const dir = scratch('makapix-restic-');
  const repo: TestRepo = { repository: path.join(dir, 'repo'), passwordFile: passwordFile(dir), backendEnv: {}, cacheDir: path.join(dir, 'cache'), files: path.join(dir, 'repo'), dir };
  if (init) await initRepo(repo);
  return repo;
}

export interface SftpServer {
  port: number;
  dir: string;
  /** The ssh command restic runs (-o sftp.command). */
  sftpCommand: string;
  server: ServerProcess;
  stop(): void;
  /** Starts it again on the same port (after stop, for "the repository came back"). */
  restart(): Promise<void>;
}

/** An OpenSSH server on 127.0.0.1:<free port>, root logging in with a throwaway key, sftp only in its own folder. */
export async function startSftpServer(): Promise<SftpServer> {
  const dir = scratch('makapix-sshd-');
  const keygen = (file: string) => {
    const r = spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'makapix-test', '-f', file]);
    if (r.status !== 0) throw new Error(`ssh-keygen failed: ${r.stderr}`);
  };
  keygen(path.join(dir, 'host_key'));
  keygen(path.join(dir, 'user_key'));
  writeFileSync(path.join(dir, 'authorized_keys'), readFileSync(path.join(dir, 'user_key.pub')), { mode: 0o600 });
  const port = await freePort();
  writeFileSync(path.join(dir, 'known_hosts'), `[127.0.0.1]:${port} ${readFileSync(path.join(dir, 'host_key.pub'), 'utf8')}`);
  writeFileSync(
    path.join(dir, 'sshd_config'),
    [
      `Port ${port}`, 'ListenAddress 127.0.0.1', `HostKey ${path.join(dir, 'host_key')}`, `PidFile ${path.join(dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${path.join(dir, 'authorized_keys')}`, 'PasswordAuthentication no', 'KbdInteractiveAuthentication no', 'UsePAM no',
      'StrictModes no', 'PermitRootLogin prohibit-password', 'Subsystem sftp internal-sftp', 'LogLevel ERROR', '',
    ].join('\n'),
  );
  // sshd's privilege-separation folder; the package creates it only when its service starts.
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const sshCommand = ['ssh', '-F', '/dev/null', '-p', String(port), '-i', path.join(dir, 'user_key'), '-o', 'IdentitiesOnly=yes', '-o', `UserKnownHostsFile=${path.join(dir, 'known_hosts')}`, '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=5', 'root@127.0.0.1', '-s', 'sftp'].join(' ');
  const start = async () => {
    const server = spawnServer('/usr/sbin/sshd', ['-D', '-e', '-f', path.join(dir, 'sshd_config')], path.join(dir, 'never-removed'));
    await waitForPort(port, server.child, server.log, 'sshd');
    return server;
  };
  const self: SftpServer = {
    port,
    dir,
    sftpCommand: sshCommand,
    server: await start(),
    stop: () => self.server.child.kill('SIGKILL'),
    restart: async () => {
      self.server = await start();
    },
  };
  return self;
}

/** A new, initialised repository on the sftp server (each test its own folder). */
export async function sftpRepo(server: SftpServer, name: string): Promise<TestRepo> {
  const dir = scratch('makapix-restic-sftp-');
  const files = path.join(server.dir, 'repos', name);
  mkdirSync(path.dirname(files), { recursive: true });
  const repo: TestRepo = { repository: `sftp:root@127.0.0.1:${files}`, passwordFile: passwordFile(dir), backendEnv: {}, sftpCommand: server.sftpCommand, cacheDir: path.join(dir, 'cache'), files, dir };
  await initRepo(repo);
  return repo;
}

/**
 * restic's own verdict on a repository: `restic check` (all metadata; with readData every pack).
 * noLock: without taking the exclusive lock (a stale lock of a killed run would refuse it).
 */
export async function resticCheck(repo: ResticRepo, readData = false, noLock = false): Promise<{ ok: boolean; out: string }> {
  const r = await run(resticCommand(repo, ['check', ...(readData ? ['--read-data'] : []), ...(noLock ? ['--no-lock'] : [])]), { nothrow: true });
  return { ok: r.exitCode === 0 && /no errors were found/.test(r.stdout), out: `${r.stdout}\n${r.stderr}` };
}
