#!/usr/bin/env node
// Hearth toolchain bootstrap.
//
//   node scripts/bootstrap.mjs [--with-redis] [--with-browser] -- <command> [args...]
//
// Makes sure Node 24, nats-server >= 2.10, (optionally) redis-server and
// chromium, and the npm dependencies are present, then runs <command> with an environment in
// which they are found. Prints one line per install step and nothing at all
// when everything is already there. See docs/toolchain.md.
//
// Plain ESM, no dependencies, must run on Node 20+.

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const HEARTH_DIR = path.join(REPO, '.hearth');
const TOOLCHAIN = path.join(HEARTH_DIR, 'toolchain');
const LOCAL_NODE_DIR = path.join(TOOLCHAIN, 'node');
const LOCAL_NODE = path.join(LOCAL_NODE_DIR, 'bin', 'node');
const LOCAL_BIN = path.join(TOOLCHAIN, 'bin');
const LOCAL_NATS = path.join(LOCAL_BIN, 'nats-server');
const LOCK_DIR = path.join(HEARTH_DIR, 'bootstrap.lock');
const LOCK_STALE_MS = 10 * 60 * 1000;
const NODE_MAJOR = 24;
const NATS_MIN = [2, 10];
const NATS_SUITE = 'trixie';
const IS_ROOT = typeof process.getuid === 'function' && process.getuid() === 0;

// ---------------------------------------------------------------------------
// small helpers

class BootstrapError extends Error {}

/** Fail with a message that says what went wrong and what to do instead. */
function fail(what, instead) {
  throw new BootstrapError(instead ? `${what}\n  ${instead}` : what);
}

function say(line) {
  process.stderr.write(`hearth: ${line}\n`);
}

const rel = (p) => path.relative(REPO, p) || '.';

function isExecutableFile(p) {
  try {
    if (!fs.statSync(p).isFile()) return false;
    fs.accessSync(p, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Absolute path of `name` on PATH, or null. */
function which(name, envPath = process.env.PATH ?? '') {
  for (const dir of envPath.split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.resolve(dir, name);
    if (isExecutableFile(candidate)) return candidate;
  }
  return null;
}

function mtimeMs(p) {
  try {
    return fs.statSync(p).mtimeMs;
  } catch {
    return null;
  }
}

/** Quick synchronous `<bin> <args>`; returns combined trimmed output or null. */
function probe(bin, args) {
  const r = spawnSync(bin, args, { encoding: 'utf8', timeout: 15000, stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.error || r.status !== 0) return null;
  return `${r.stdout ?? ''}${r.stderr ?? ''}`.trim();
}

function tail(text, lines = 15) {
  const all = String(text ?? '').trimEnd().split('\n').filter((l) => l.trim() !== '');
  return all.slice(-lines).map((l) => `    ${l}`).join('\n');
}

// Child processes started while installing, so a signal can stop them too.
const installChildren = new Set();
const tempDirs = new Set();

/** Run a command to completion, capturing its output. Never throws on exit code. */
function run(cmd, args, opts = {}) {
  return new Promise((resolve) => {
    let out = '';
    let child;
    try {
      child = spawn(cmd, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (error) {
      resolve({ code: -1, out: String(error.message), error });
      return;
    }
    installChildren.add(child);
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('error', (error) => {
      installChildren.delete(child);
      resolve({ code: -1, out: `${out}${error.message}`, error });
    });
    child.on('close', (code, signal) => {
      installChildren.delete(child);
      resolve({ code: code ?? 128 + (os.constants.signals[signal] ?? 0), out });
    });
  });
}

function makeTempDir(parent, prefix) {
  fs.mkdirSync(parent, { recursive: true });
  const dir = fs.mkdtempSync(path.join(parent, prefix));
  tempDirs.add(dir);
  return dir;
}

function removeTempDir(dir) {
  tempDirs.delete(dir);
  try {
    fs.rmSync(dir, { recursive: true, force: true });
  } catch {
    // best effort
  }
}

// ---------------------------------------------------------------------------
// lock (only held while installing)

let lockHeld = false;
let lockWaitAnnounced = false;

function lockIsStale() {
  try {
    if (Date.now() - fs.statSync(LOCK_DIR).mtimeMs > LOCK_STALE_MS) return true;
  } catch {
    return false; // gone: not stale, just retry mkdir
  }
  try {
    const [pidText, host] = fs.readFileSync(path.join(LOCK_DIR, 'pid'), 'utf8').split('\n');
    const pid = Number(pidText);
    if (pid > 0 && host === os.hostname()) {
      try {
        process.kill(pid, 0);
      } catch (error) {
        if (error.code === 'ESRCH') return true; // owner is gone
      }
    }
  } catch {
    // no pid file (yet): rely on the age check
  }
  return false;
}

async function acquireLock() {
  if (lockHeld) return;
  fs.mkdirSync(HEARTH_DIR, { recursive: true });
  for (;;) {
    try {
      fs.mkdirSync(LOCK_DIR);
      lockHeld = true;
      try {
        fs.writeFileSync(path.join(LOCK_DIR, 'pid'), `${process.pid}\n${os.hostname()}\n`);
      } catch {
        // the directory alone is the lock
      }
      return;
    } catch (error) {
      if (error.code !== 'EEXIST') {
        fail(`cannot create ${rel(LOCK_DIR)} (${error.code ?? error.message}).`, `Check that ${rel(HEARTH_DIR)} is writable.`);
      }
    }
    if (lockIsStale()) {
      fs.rmSync(LOCK_DIR, { recursive: true, force: true });
      continue;
    }
    if (!lockWaitAnnounced) {
      lockWaitAnnounced = true;
      say(`waiting for another bootstrap to finish installing (lock ${rel(LOCK_DIR)})`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

function releaseLock() {
  if (!lockHeld) return;
  lockHeld = false;
  try {
    fs.rmSync(LOCK_DIR, { recursive: true, force: true });
  } catch {
    // best effort
  }
}

function cleanupInstallState() {
  for (const child of installChildren) {
    try {
      child.kill('SIGTERM');
    } catch {
      // already gone
    }
  }
  for (const dir of [...tempDirs]) removeTempDir(dir);
  releaseLock();
}

// While installing, a signal stops the install step, cleans up and exits.
const INSTALL_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'];
function onInstallSignal(signal) {
  cleanupInstallState();
  process.stderr.write(`\nhearth: interrupted (${signal}) while installing; nothing was left half-installed\n`);
  process.exit(128 + (os.constants.signals[signal] ?? 0));
}
for (const s of INSTALL_SIGNALS) process.on(s, onInstallSignal);
process.on('exit', cleanupInstallState);

// ---------------------------------------------------------------------------
// step 1: Node 24

function nodeMajor(version) {
  const m = /^v?(\d+)\./.exec(version ?? '');
  return m ? Number(m[1]) : null;
}

function localNodeVersion() {
  if (!isExecutableFile(LOCAL_NODE)) return null;
  const v = probe(LOCAL_NODE, ['--version']);
  return v && nodeMajor(v) === NODE_MAJOR ? v : null;
}

function npmPackageForNode() {
  const platform = process.platform === 'win32' ? 'win' : process.platform;
  return `node-${platform}-${process.arch}@${NODE_MAJOR}`;
}

async function ensureNode() {
  if (Number(process.versions.node.split('.')[0]) >= NODE_MAJOR) {
    return { node: process.execPath, local: false, major: nodeMajor(process.version) };
  }
  if (localNodeVersion()) return { node: LOCAL_NODE, local: true, major: NODE_MAJOR };

  await acquireLock();
  if (localNodeVersion()) return { node: LOCAL_NODE, local: true, major: NODE_MAJOR }; // installed while we waited

  const spec = npmPackageForNode();
  say(
    `installing Node ${NODE_MAJOR} into ${rel(LOCAL_NODE_DIR)} ` +
      `(platform and agent need Node ${NODE_MAJOR}; this machine has ${process.version})`,
  );
  const instead = `Install Node ${NODE_MAJOR} yourself (e.g. with nvm) and run this again with it.`;
  const npmCli = findNpmCli();
  const tmp = makeTempDir(HEARTH_DIR, 'tmp-node-');
  try {
    const packed = await run(process.execPath, [npmCli, 'pack', spec, '--pack-destination', tmp, '--loglevel=error'], {
      cwd: tmp,
      env: { ...process.env, npm_config_update_notifier: 'false' },
    });
    const tarball = fs.readdirSync(tmp).find((f) => f.endsWith('.tgz'));
    if (packed.code !== 0 || !tarball) {
      fail(`could not download ${spec} from the npm registry (npm pack exited with ${packed.code}):\n${tail(packed.out)}`, instead);
    }
    const extracted = path.join(tmp, 'node');
    fs.mkdirSync(extracted);
    const untar = await run('tar', ['xzf', path.join(tmp, tarball), '-C', extracted, '--strip-components=1', '--no-same-owner']);
    if (untar.code !== 0) fail(`could not extract ${tarball} (tar exited with ${untar.code}):\n${tail(untar.out)}`, instead);
    fs.rmSync(path.join(tmp, tarball), { force: true });

    const newNode = path.join(extracted, 'bin', 'node');
    if (fs.existsSync(newNode)) fs.chmodSync(newNode, 0o755);
    const version = fs.existsSync(newNode) ? probe(newNode, ['--version']) : null;
    if (nodeMajor(version) !== NODE_MAJOR) {
      fail(`the downloaded ${spec} does not run here (bin/node --version gave ${JSON.stringify(version)}).`, instead);
    }

    fs.mkdirSync(TOOLCHAIN, { recursive: true });
    if (fs.existsSync(LOCAL_NODE_DIR)) fs.renameSync(LOCAL_NODE_DIR, path.join(tmp, 'old'));
    fs.renameSync(extracted, LOCAL_NODE_DIR);
  } finally {
    removeTempDir(tmp);
  }
  if (!localNodeVersion()) fail(`Node ${NODE_MAJOR} was installed into ${rel(LOCAL_NODE_DIR)} but does not run.`, instead);
  return { node: LOCAL_NODE, local: true, major: NODE_MAJOR };
}

// ---------------------------------------------------------------------------
// step 2: nats-server >= 2.10

function natsVersion(bin) {
  const out = probe(bin, ['--version']);
  const m = out && /v?(\d+)\.(\d+)\.(\d+)/.exec(out);
  return m ? { text: `v${m[1]}.${m[2]}.${m[3]}`, major: Number(m[1]), minor: Number(m[2]) } : null;
}

function natsOk(v) {
  return !!v && (v.major > NATS_MIN[0] || (v.major === NATS_MIN[0] && v.minor >= NATS_MIN[1]));
}

const NATS_INSTEAD =
  `Install nats-server >= ${NATS_MIN.join('.')} yourself and put it on PATH, ` +
  `or set HEARTH_NATS_SERVER=/path/to/nats-server.`;

async function ensureNats() {
  const fromEnv = process.env.HEARTH_NATS_SERVER;
  if (fromEnv) {
    const bin = fromEnv.includes('/') ? path.resolve(fromEnv) : which(fromEnv);
    if (!bin || !isExecutableFile(bin)) {
      fail(`HEARTH_NATS_SERVER=${fromEnv} is not an executable file.`, 'Point it at a nats-server >= 2.10 binary, or unset it.');
    }
    const v = natsVersion(bin);
    if (!natsOk(v)) {
      fail(
        `HEARTH_NATS_SERVER=${fromEnv} is ${v ? `nats-server ${v.text}` : 'not a working nats-server'}; ` +
          `Hearth needs >= ${NATS_MIN.join('.')} (older releases are out of support and have a known auth bypass).`,
        'Point it at a nats-server >= 2.10 binary, or unset it to let bootstrap install one.',
      );
    }
    return bin;
  }

  const onPath = which('nats-server');
  const onPathVersion = onPath ? natsVersion(onPath) : null;
  if (onPath && natsOk(onPathVersion)) return onPath;

  if (isExecutableFile(LOCAL_NATS) && natsOk(natsVersion(LOCAL_NATS))) return LOCAL_NATS;

  await acquireLock();
  if (isExecutableFile(LOCAL_NATS) && natsOk(natsVersion(LOCAL_NATS))) return LOCAL_NATS;

  const why = onPath
    ? `the nats-server on PATH is ${onPathVersion ? onPathVersion.text : 'not working'}; Hearth needs >= ${NATS_MIN.join('.')}`
    : `Hearth needs nats-server >= ${NATS_MIN.join('.')} and none is on PATH`;
  await installNatsFromDebian(why);

  const v = natsVersion(LOCAL_NATS);
  if (!natsOk(v)) {
    fail(`the nats-server installed into ${rel(LOCAL_BIN)} reports ${v ? v.text : 'no version'}.`, NATS_INSTEAD);
  }
  return LOCAL_NATS;
}

/** Parse apt sources (one-line .list and deb822 .sources) into stanzas. */
function readAptSources() {
  const stanzas = [];
  const parseList = (text) => {
    for (const raw of text.split('\n')) {
      const line = raw.replace(/#.*$/, '').trim();
      if (!line) continue;
      const m = /^(deb|deb-src)\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)\s*(.*)$/.exec(line);
      if (!m) continue;
      const options = Object.fromEntries(
        (m[2] ?? '')
          .split(/\s+/)
          .filter(Boolean)
          .map((o) => {
            const i = o.indexOf('=');
            return i < 0 ? [o.toLowerCase(), ''] : [o.slice(0, i).toLowerCase(), o.slice(i + 1)];
          }),
      );
      stanzas.push({
        types: [m[1]],
        uris: [m[3]],
        suites: [m[4]],
        components: m[5].split(/\s+/).filter(Boolean),
        signedBy: options['signed-by'] ?? null,
        enabled: true,
      });
    }
  };
  const parseDeb822 = (text) => {
    for (const block of text.split(/\n\s*\n/)) {
      const fields = {};
      let current = null;
      for (const line of block.split('\n')) {
        if (line.startsWith('#')) continue;
        if (/^\s/.test(line) && current) {
          fields[current].push(line);
          continue;
        }
        const m = /^([A-Za-z0-9-]+):\s*(.*)$/.exec(line);
        if (!m) continue;
        current = m[1].toLowerCase();
        fields[current] = [m[2]];
      }
      if (!fields.types || !fields.uris) continue;
      const words = (key) => (fields[key] ?? []).join(' ').split(/\s+/).filter(Boolean);
      const signedBy = fields['signed-by'];
      stanzas.push({
        types: words('types'),
        uris: words('uris'),
        suites: words('suites'),
        components: words('components'),
        // a path, or an inline key block (kept as its continuation lines)
        signedBy: signedBy ? (signedBy.length > 1 ? signedBy.join('\n') : signedBy[0].trim()) : null,
        enabled: !/^(no|false)$/i.test((fields.enabled ?? ['yes'])[0].trim()),
      });
    }
  };
  const read = (file, parser) => {
    try {
      parser(fs.readFileSync(file, 'utf8'));
    } catch {
      // unreadable or missing: ignore
    }
  };
  read('/etc/apt/sources.list', parseList);
  let parts = [];
  try {
    parts = fs.readdirSync('/etc/apt/sources.list.d').sort();
  } catch {
    // no parts dir
  }
  for (const name of parts) {
    const file = path.join('/etc/apt/sources.list.d', name);
    if (name.endsWith('.list')) read(file, parseList);
    else if (name.endsWith('.sources')) read(file, parseDeb822);
  }
  return stanzas.filter((s) => s.enabled && s.types.includes('deb'));
}

function debianMainSuite() {
  try {
    const m = /^VERSION_CODENAME=("?)([^"\n]*)\1$/m.exec(fs.readFileSync('/etc/os-release', 'utf8'));
    if (m && m[2]) return m[2];
  } catch {
    // fall through
  }
  return null;
}

/** The Debian archive this machine uses: { uri, signedBy }. */
function findDebianArchive() {
  const stanzas = readAptSources();
  const mainSuite = debianMainSuite();
  const isMainSuite = (s) => (mainSuite ? s === mainSuite : !s.includes('-') && !s.includes('/'));
  const trim = (u) => u.replace(/\/+$/, '');
  const candidates = [];
  for (const st of stanzas) {
    if (!st.suites.some(isMainSuite)) continue;
    for (const uri of st.uris) candidates.push({ uri: trim(uri), signedBy: st.signedBy });
  }
  const best =
    candidates.find((c) => /\/debian$/.test(c.uri)) ??
    candidates.find((c) => /\/debian(\/|$)/.test(c.uri) && !/security/.test(c.uri));
  if (!best) return null;
  if (!best.signedBy && fs.existsSync('/usr/share/keyrings/debian-archive-keyring.gpg')) {
    best.signedBy = '/usr/share/keyrings/debian-archive-keyring.gpg';
  }
  return best;
}

async function installNatsFromDebian(why) {
  const aptGet = which('apt-get');
  const dpkgDeb = which('dpkg-deb');
  if (!aptGet || !dpkgDeb) {
    fail(`${why}, and this is not a Debian-like system (apt-get/dpkg-deb not found), so bootstrap cannot install it.`, NATS_INSTEAD);
  }
  const archive = findDebianArchive();
  if (!archive) {
    fail(`${why}, and no Debian archive (a URI ending in /debian) was found in this machine's apt sources.`, NATS_INSTEAD);
  }

  say(`installing nats-server from Debian ${NATS_SUITE} into ${rel(LOCAL_BIN)} (${why})`);

  const tmp = makeTempDir(os.tmpdir(), 'hearth-nats-');
  try {
    fs.chmodSync(tmp, 0o755);
    for (const d of ['sources.d', 'lists/partial', 'cache/archives/partial', 'x']) {
      fs.mkdirSync(path.join(tmp, d), { recursive: true });
    }
    const signedBy = archive.signedBy
      ? archive.signedBy.includes('\n')
        ? `Signed-By:${archive.signedBy.startsWith('\n') ? '' : ' '}${archive.signedBy}\n`
        : `Signed-By: ${archive.signedBy}\n`
      : '';
    fs.writeFileSync(
      path.join(tmp, 'sources.d', 'hearth.sources'),
      `Types: deb\nURIs: ${archive.uri}\nSuites: ${NATS_SUITE}\nComponents: main\n${signedBy}`,
    );
    const aptOpts = [
      '-o', 'Dir::Etc::SourceList=/dev/null',
      '-o', `Dir::Etc::SourceParts=${path.join(tmp, 'sources.d')}`,
      '-o', `Dir::State::Lists=${path.join(tmp, 'lists')}`,
      '-o', `Dir::Cache=${path.join(tmp, 'cache')}`,
      '-o', 'Acquire::Languages=none',
      '-o', 'APT::Get::List-Cleanup=false',
    ];
    if (IS_ROOT) aptOpts.push('-o', 'APT::Sandbox::User=root');
    const aptEnv = { ...process.env, DEBIAN_FRONTEND: 'noninteractive', LC_ALL: 'C' };

    const update = await run(aptGet, [...aptOpts, '-q', 'update'], { cwd: tmp, env: aptEnv });
    // apt-get update exits 0 even for some fetch failures; "E:"/"W: Failed" lines tell.
    if (update.code !== 0 || /^(E:|W: (Failed|GPG|The repository))/m.test(update.out)) {
      fail(`could not read Debian ${NATS_SUITE} from ${archive.uri} (apt-get update):\n${tail(update.out, 8)}`, NATS_INSTEAD);
    }
    const download = await run(aptGet, [...aptOpts, '-q', 'download', 'nats-server'], { cwd: tmp, env: aptEnv });
    const deb = fs.readdirSync(tmp).find((f) => /^nats-server_.*\.deb$/.test(f));
    if (download.code !== 0 || !deb) {
      fail(`could not download nats-server from Debian ${NATS_SUITE} (apt-get download):\n${tail(download.out, 8)}`, NATS_INSTEAD);
    }
    const x = await run(dpkgDeb, ['-x', path.join(tmp, deb), path.join(tmp, 'x')]);
    const extracted = ['usr/bin', 'usr/sbin', 'bin', 'sbin']
      .map((d) => path.join(tmp, 'x', d, 'nats-server'))
      .find((p) => fs.existsSync(p));
    if (x.code !== 0 || !extracted) {
      fail(`could not unpack ${deb} (dpkg-deb -x):\n${tail(x.out, 8)}`, NATS_INSTEAD);
    }
    fs.chmodSync(extracted, 0o755);
    const v = natsVersion(extracted);
    if (!natsOk(v)) {
      fail(`the nats-server in ${deb} does not run here or is too old (--version: ${v ? v.text : 'failed'}).`, NATS_INSTEAD);
    }
    fs.mkdirSync(LOCAL_BIN, { recursive: true });
    const staged = `${LOCAL_NATS}.tmp-${process.pid}`;
    fs.copyFileSync(extracted, staged);
    fs.chmodSync(staged, 0o755);
    fs.renameSync(staged, LOCAL_NATS);
  } finally {
    removeTempDir(tmp);
  }
}

// ---------------------------------------------------------------------------
// step 3: redis-server and chromium (optional, from Debian's packages)

const REDIS_SKIP = 'tests against a real Redis will be skipped (install redis-server to run them)';
const CHROMIUM_SKIP = "the console's browser tests will be skipped (install chromium to run them)";

/**
 * A tool some tests need, from an environment variable, PATH, or (as root,
 * with apt) `apt-get install <package>`; null when none could be had.
 */
async function ensureAptTool({ name, envVar, binaries, aptPackage, wanted, skip, why }) {
  const fromEnv = process.env[envVar];
  if (fromEnv) {
    const bin = fromEnv.includes('/') ? path.resolve(fromEnv) : which(fromEnv);
    if (bin && isExecutableFile(bin)) return bin;
    if (wanted) {
      fail(`${envVar}=${fromEnv} is not an executable file.`, `Point it at a ${name} binary, or unset it.`);
    }
    return null;
  }
  const find = () => {
    for (const b of binaries) {
      const found = which(b) ?? (isExecutableFile(`/usr/bin/${b}`) ? `/usr/bin/${b}` : null);
      if (found) return found;
    }
    return null;
  };
  const onPath = find();
  if (onPath || !wanted) return onPath;

  const aptGet = which('apt-get');
  if (!IS_ROOT || !aptGet) {
    say(`${name} not found; ${skip}`);
    return null;
  }
  await acquireLock();
  const again = find();
  if (again) return again;

  say(`installing ${aptPackage} with apt-get (${why}; it is not installed)`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const update = await run(aptGet, ['-qq', 'update'], { env });
  const install =
    update.code === 0
      ? await run(aptGet, ['-y', '-qq', '--no-install-recommends', 'install', aptPackage], { env })
      : update;
  const bin = find();
  if (install.code !== 0 || !bin) {
    say(`could not install ${aptPackage} with apt-get (exit ${install.code}); ${skip}`);
    if (install.out) process.stderr.write(`${tail(install.out, 8)}\n`);
    return null;
  }
  return bin;
}

function ensureRedis(withRedis) {
  return ensureAptTool({
    name: 'redis-server', envVar: 'HEARTH_REDIS_SERVER', binaries: ['redis-server'], aptPackage: 'redis-server',
    wanted: withRedis, skip: REDIS_SKIP, why: 'tests against a real Redis need it',
  });
}

/** Debian's chromium, which playwright-core drives in the console's browser tests (no browser download: Playwright's own builds are not fetched). */
function ensureChromium(withBrowser) {
  return ensureAptTool({
    name: 'chromium', envVar: 'HEARTH_CHROMIUM', binaries: ['chromium', 'chromium-browser'], aptPackage: 'chromium',
    wanted: withBrowser, skip: CHROMIUM_SKIP, why: 'the console\'s browser tests need a headless browser',
  });
}

// ---------------------------------------------------------------------------
// step 4: npm dependencies

function findNpmCli() {
  const fromEnv = process.env.npm_execpath;
  if (fromEnv && /npm-cli\.c?js$/.test(fromEnv) && fs.existsSync(fromEnv)) return fromEnv;
  const npm = which('npm');
  if (npm) {
    let real = npm;
    try {
      real = fs.realpathSync(npm);
    } catch {
      // keep the link
    }
    if (/\.c?js$/.test(real)) return real;
    // a shell shim: look for the usual layout next to it
    for (const guess of [
      path.resolve(path.dirname(real), '..', 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js'),
      path.resolve(path.dirname(real), 'node_modules', 'npm', 'bin', 'npm-cli.js'),
    ]) {
      if (fs.existsSync(guess)) return guess;
    }
  }
  fail('cannot find npm (npm-cli.js) on this machine.', 'Install npm (it ships with Node.js) and make sure `npm` is on PATH.');
}

function workspacePackageJsons() {
  const files = [path.join(REPO, 'package.json')];
  let patterns = ['protocol', 'platform', 'node-agent', 'sdk', 'test', 'examples/*'];
  try {
    const pkg = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8'));
    const ws = Array.isArray(pkg.workspaces) ? pkg.workspaces : pkg.workspaces?.packages;
    if (Array.isArray(ws)) patterns = ws;
  } catch {
    // keep the defaults
  }
  for (const pattern of patterns) {
    if (pattern.endsWith('/*')) {
      const parent = path.join(REPO, pattern.slice(0, -2));
      let entries = [];
      try {
        entries = fs.readdirSync(parent, { withFileTypes: true });
      } catch {
        continue; // folder not there (yet)
      }
      for (const e of entries) if (e.isDirectory()) files.push(path.join(parent, e.name, 'package.json'));
    } else if (!pattern.includes('*')) {
      files.push(path.join(REPO, pattern, 'package.json'));
    }
  }
  return files;
}

// Written after every successful install; if npm touched node_modules since
// (a failed install, or `npm install` run without bootstrap, maybe with another
// Node), the lockfile copy is newer than this marker and we install again.
const DEPS_MARKER = path.join(REPO, 'node_modules', '.hearth-deps');

/** Why dependencies must be (re)installed, or null when they are up to date. */
function depsStale(stamp, nodeMajorUsed) {
  const stampTime = mtimeMs(stamp);
  if (stampTime === null) {
    return fs.existsSync(path.join(REPO, 'node_modules')) ? 'node_modules is incomplete' : 'node_modules is missing';
  }
  const markerTime = mtimeMs(DEPS_MARKER);
  if (markerTime === null || markerTime < stampTime) {
    return 'node_modules was changed outside bootstrap or its last install did not finish';
  }
  try {
    const marker = JSON.parse(fs.readFileSync(DEPS_MARKER, 'utf8'));
    if (marker.nodeMajor !== nodeMajorUsed) return `node_modules was installed with Node ${marker.nodeMajor}`;
  } catch {
    return 'node_modules was changed outside bootstrap or its last install did not finish';
  }
  const lock = path.join(REPO, 'package-lock.json');
  const lockTime = mtimeMs(lock);
  if (lockTime !== null && lockTime > stampTime) return 'package-lock.json changed since the last install';
  for (const file of workspacePackageJsons()) {
    const t = mtimeMs(file);
    if (t !== null && t > stampTime) return `${rel(file)} changed since the last install`;
  }
  return null;
}

async function ensureDeps(nodeInfo) {
  const stamp = path.join(REPO, 'node_modules', '.package-lock.json');
  if (!depsStale(stamp, nodeInfo.major)) return;
  await acquireLock();
  const why = depsStale(stamp, nodeInfo.major);
  if (!why) return;

  const useCi = !!process.env.CI && process.env.CI !== 'false' && fs.existsSync(path.join(REPO, 'package-lock.json'));
  const verb = useCi ? 'ci' : 'install';
  say(`running npm ${verb} with Node ${NODE_MAJOR} (${why}; native modules must be built for Node ${NODE_MAJOR})`);

  const npmCli = findNpmCli();
  const env = { ...process.env, PATH: [path.dirname(nodeInfo.node), process.env.PATH].filter(Boolean).join(path.delimiter) };
  if (nodeInfo.local) env.npm_config_nodedir = LOCAL_NODE_DIR;
  if (env.NODE) env.NODE = nodeInfo.node;
  if (env.npm_node_execpath) env.npm_node_execpath = nodeInfo.node;
  const r = await run(nodeInfo.node, [npmCli, verb, '--no-audit', '--no-fund'], { cwd: REPO, env });
  if (r.code !== 0) {
    fail(
      `npm ${verb} failed (exit ${r.code}):\n${tail(r.out, 20)}`,
      `Fix the error above and run this again, or run \`PATH=${path.dirname(nodeInfo.node)}:$PATH npm ${verb}\` yourself to see the full log.`,
    );
  }
  const now = new Date();
  try {
    fs.utimesSync(stamp, now, now);
  } catch {
    fs.mkdirSync(path.dirname(stamp), { recursive: true });
    fs.writeFileSync(stamp, '{}\n');
  }
  fs.writeFileSync(DEPS_MARKER, `${JSON.stringify({ nodeMajor: nodeInfo.major, node: nodeInfo.node })}\n`);
  fs.utimesSync(DEPS_MARKER, now, now);
}

// ---------------------------------------------------------------------------
// step 4b: the SDK build (sdk/dist), which `npx hearth`, the demo and the CLI
// tests run; npm's `prepare` builds it on install, but not after a source edit

function newestMtime(dir) {
  let newest = 0;
  let entries = [];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return newest;
  }
  for (const e of entries) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestMtime(p));
    else if (e.isFile()) newest = Math.max(newest, mtimeMs(p) ?? 0);
  }
  return newest;
}

function sdkBuildAge() {
  const built = Math.min(mtimeMs(path.join(REPO, 'sdk', 'dist', 'cli.js')) ?? 0, mtimeMs(path.join(REPO, 'sdk', 'dist', 'index.js')) ?? 0);
  const sources = Math.max(newestMtime(path.join(REPO, 'sdk', 'src')), newestMtime(path.join(REPO, 'protocol', 'src')));
  return built >= sources ? null : built;
}

async function ensureSdkBuild(nodeInfo) {
  if (sdkBuildAge() === null) return;
  await acquireLock();
  const built = sdkBuildAge();
  if (built === null) return; // built while we waited
  say(built === 0 ? 'building the SDK (sdk/dist is missing)' : 'rebuilding the SDK (sdk/src or protocol/src changed since sdk/dist was built)');
  const r = await run(nodeInfo.node, [path.join(REPO, 'sdk', 'scripts', 'build.mjs')], { cwd: REPO });
  if (r.code !== 0) fail(`the SDK build failed (exit ${r.code}):\n${tail(r.out, 20)}`, 'Fix the error above (npm run build shows it too) and run this again.');
}

// ---------------------------------------------------------------------------
// step 5: run the command

function parseArgs(argv) {
  let withRedis = false;
  let withBrowser = false;
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') {
      i++;
      break;
    }
    if (a === '--with-redis') withRedis = true;
    else if (a === '--with-browser') withBrowser = true;
    else if (a === '-h' || a === '--help') {
      process.stdout.write('usage: node scripts/bootstrap.mjs [--with-redis] [--with-browser] -- <command> [args...]\n');
      process.exit(0);
    } else if (a.startsWith('-')) fail(`unknown option ${a}.`, 'usage: node scripts/bootstrap.mjs [--with-redis] [--with-browser] -- <command> [args...]');
    else break; // the command itself, without a leading --
  }
  const command = argv.slice(i);
  if (command.length === 0) fail('no command given.', 'usage: node scripts/bootstrap.mjs [--with-redis] [--with-browser] -- <command> [args...]');
  return { withRedis, withBrowser, command };
}

function runCommand(command, env) {
  for (const s of INSTALL_SIGNALS) process.removeListener(s, onInstallSignal);
  const [cmd, ...args] = command;
  const child = spawn(cmd, args, { stdio: 'inherit', env });
  const forward = (signal) => {
    try {
      child.kill(signal);
    } catch {
      // already gone
    }
  };
  for (const s of INSTALL_SIGNALS) process.on(s, forward);
  child.on('error', (error) => {
    const msg =
      error.code === 'ENOENT'
        ? `command not found: ${cmd}`
        : error.code === 'EACCES'
          ? `permission denied running ${cmd}`
          : `could not start ${cmd}: ${error.message}`;
    process.stderr.write(`hearth: ${msg}\n`);
    process.exit(1);
  });
  child.on('exit', (code, signal) => {
    process.exit(code ?? 128 + (os.constants.signals[signal] ?? 0));
  });
}

async function main() {
  const { withRedis, withBrowser, command } = parseArgs(process.argv.slice(2));

  const nodeInfo = await ensureNode();
  const nats = await ensureNats();
  const redis = await ensureRedis(withRedis);
  const chromium = await ensureChromium(withBrowser);
  await ensureDeps(nodeInfo);
  await ensureSdkBuild(nodeInfo);
  releaseLock();

  const nodeBin = path.dirname(nodeInfo.node);
  const env = { ...process.env };
  env.PATH = [nodeBin, LOCAL_BIN, path.join(REPO, 'node_modules', '.bin'), process.env.PATH]
    .filter(Boolean)
    .join(path.delimiter);
  env.HEARTH_NATS_SERVER = nats;
  // The machine's own node (e.g. Node 20): tests use it to check that the SDK and CLI run there too.
  env.HEARTH_HOST_NODE ??= process.execPath;
  if (redis) env.HEARTH_REDIS_SERVER = redis;
  if (chromium) env.HEARTH_CHROMIUM = chromium;
  if (nodeInfo.local) env.npm_config_nodedir = LOCAL_NODE_DIR;
  // Tools that re-launch "the current node" should get Node 24 too.
  if (env.NODE) env.NODE = nodeInfo.node;
  if (env.npm_node_execpath) env.npm_node_execpath = nodeInfo.node;

  runCommand(command, env);
}

main().catch((error) => {
  cleanupInstallState();
  const message = error instanceof BootstrapError ? error.message : `unexpected error: ${error?.message ?? error}`;
  process.stderr.write(`hearth: ${message}\n`);
  process.exit(1);
});
