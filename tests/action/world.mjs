// The machine the action tests run their CI jobs on: a private mount namespace (the test runs
// under `unshare --mount`), with /dev/fuse 0666 and a setuid fusermount3 as hosted runners have
// them, a private /tmp/fbfs for the fixed mountpoints, and runners that are directories with a
// home, a workspace and a temp dir, each job run by runner.mjs as an ordinary user (nobody).
//
// Every compiler run goes through wrappers (cc, c++, gcc, g++) first on PATH that log their
// command lines outside every mount, so a test counts what was compiled, not what a tool said.
// Each job runs in a mount namespace of its own (for the faults a test plants) and unmounts
// whatever fbfs mount it left before it ends; leftovers are reported as a failure. Everything
// is removed by close(), which the tests call on every path out.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const sourceDir = process.env.FBFS_SOURCE_DIR ?? path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const fbfsBinary = process.env.FBFS_BINARY;
const runnerScript = path.join(path.dirname(fileURLToPath(import.meta.url)), "runner.mjs");
const nobody = 65534;

// Runs a command as root and returns its stdout; throws with its stderr on failure.
export function sh(command, args, options = {}) {
  const r = spawnSync(command, args, { encoding: "utf8", ...options });
  if (r.status !== 0) {
    throw new Error(`${command} ${args.join(" ")}: exit ${r.status}\n${r.stdout}\n${r.stderr}`);
  }
  return r.stdout;
}

export class Failure extends Error {}

// A new mount namespace starts with copies of every mount there was, other tests' FUSE mounts
// among them, and a copy keeps a FUSE connection alive: the daemon of a mount its test unmounts
// would never exit, and that test's `fbfs umount` would wait for it. So this namespace lets go
// of them first (umount -l here leaves them mounted where they belong).
function detachInheritedFuseMounts() {
  // `unshare --mount node ...` leaves its parent (ctest, a shell) in the namespace it came from.
  if (fs.readlinkSync("/proc/self/ns/mnt") === fs.readlinkSync(`/proc/${process.ppid}/ns/mnt`)) {
    throw new Error("run this under `unshare --mount --propagation private`: it changes mounts");
  }
  const unescape = (p) => p.replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8)));
  for (const line of fs.readFileSync("/proc/self/mounts", "utf8").split("\n")) {
    const [, where, type] = line.split(" ");
    if (type?.startsWith("fuse")) {
      spawnSync("umount", ["-l", unescape(where)]);
    }
  }
}

export function check(ok, message) {
  if (!ok) {
    throw new Failure(message);
  }
}

export class World {
  constructor(name) {
    if (process.getuid() !== 0) {
      throw new Error("the action tests need root (they plant /dev/fuse and fusermount3 faults)");
    }
    detachInheritedFuseMounts();
    this.root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), `fbfs-action-${name}-`)));
    fs.chmodSync(this.root, 0o755);
    this.mounts = [];
    this.cache = path.join(this.root, "cache");
    this.tools = path.join(this.root, "tools");
    this.compilerLog = path.join(this.root, "compilers.log");
    fs.mkdirSync(this.cache);
    // The action's default mountpoints are under /tmp/fbfs: a tmpfs of this namespace's own
    // there. The directory itself is left in place (empty) afterwards: removing it would pull
    // the tmpfs out from under another case's namespace (rmdir of a mountpoint detaches it
    // everywhere); the "action: cleanup" test removes it once every case is done.
    this.#privateMount("tmpfs", "/tmp/fbfs", ["-o", "mode=1777,size=4g"]);
    const dev = path.join(this.root, "dev");
    this.#privateMount("tmpfs", dev, ["-o", "mode=755,size=1m"]);
    this.fuse = { open: path.join(dev, "fuse"), closed: path.join(dev, "fuse-0600") };
    sh("mknod", ["-m", "666", this.fuse.open, "c", "10", "229"]);
    sh("mknod", ["-m", "600", this.fuse.closed, "c", "10", "229"]);
    sh("mount", ["--bind", this.fuse.open, "/dev/fuse"]);
    this.mounts.push("/dev/fuse");
    this.#compilerWrappers();
    this.chownToRunner(this.cache);
  }

  #privateMount(type, where, options) {
    fs.mkdirSync(where, { recursive: true });
    sh("mount", ["-t", type, ...options, type, where]);
    this.mounts.push(where);
  }

  #compilerWrappers() {
    fs.mkdirSync(path.join(this.tools, "bin"), { recursive: true });
    fs.writeFileSync(this.compilerLog, "");
    fs.chmodSync(this.compilerLog, 0o666);
    for (const name of ["cc", "c++", "gcc", "g++"]) {
      const wrapper = path.join(this.tools, "bin", name);
      fs.writeFileSync(wrapper, `#!/bin/sh\nprintf '%s\\n' "$*" >> '${this.compilerLog}'\nexec /usr/bin/${name} "$@"\n`);
      fs.chmodSync(wrapper, 0o755);
    }
  }

  chownToRunner(dir) {
    sh("chown", ["-R", `${nobody}:${nobody}`, dir]);
  }

  // A git repository ("origin") holding a copy of `tree`, owned by the runner user.
  origin(name, tree) {
    const repo = path.join(this.root, "origin", name);
    fs.mkdirSync(path.dirname(repo), { recursive: true });
    sh("cp", ["-r", tree, repo]);
    const git = (...args) => sh("git", ["-C", repo, "-c", "safe.directory=*", "-c", "user.name=ci", "-c", "user.email=ci@example.org", ...args]);
    git("init", "-q", "-b", "main");
    git("add", "-A");
    git("commit", "-qm", "initial");
    this.chownToRunner(repo);
    return { path: repo, git: (...args) => { git(...args); this.chownToRunner(repo); } };
  }

  // A runner: its home, workspace and temp dir, laid out as `layout` ("hosted": /home/runner/
  // work/P/P, "self-hosted": /home/ci/actions-runner/_work/P/P), under a root of its own;
  // `fresh` empties an earlier runner of that name first.
  runner(name, layout, { fresh = false } = {}) {
    const base = path.join(this.root, "runners", name);
    if (fresh) {
      fs.rmSync(base, { recursive: true, force: true });  // a new machine at the same paths
    }
    const home = path.join(base, layout === "hosted" ? "home/runner" : "home/ci");
    const work = layout === "hosted" ? path.join(home, "work") : path.join(home, "actions-runner/_work");
    const runner = { name, root: base, home, workspace: path.join(work, "project/project"), temp: path.join(work, "_temp") };
    for (const dir of [runner.home, runner.temp]) {
      fs.mkdirSync(dir, { recursive: true });
    }
    this.chownToRunner(base);
    return runner;
  }

  // The compiler command lines logged since the last call: {all, sources} where sources are the
  // files after -c that are not CMake's own probes.
  takeCompilerRuns() {
    const all = fs.readFileSync(this.compilerLog, "utf8").split("\n").filter(Boolean);
    fs.writeFileSync(this.compilerLog, "");
    const sources = [];
    for (const line of all) {
      const args = line.split(" ");
      const at = args.indexOf("-c");
      if (at >= 0 && !line.includes("CMakeFiles/CMakeScratch") && !args[at + 1].includes("CMakeC")) {
        sources.push(path.basename(args[at + 1]));
      }
    }
    return { all, sources: sources.sort() };
  }

  // Plays one job of `workflow` on `runner` as the user nobody. `binds` ([source, target]) are
  // mounted over the machine for this job only. Returns {code, log, result, compilers}.
  job(runner, { workflow, block, checkout, event = "push", ref, runId, binds = [] }) {
    const resultFile = path.join(runner.root, `result-${Date.now()}.json`);
    const args = [
      "node", runnerScript, "--workflow", workflow, ...(block ? ["--block", block] : []),
      "--cache", this.cache, "--action", `OWNER/fbfs=${sourceDir}`, "--event", event,
      "--result", resultFile, ...(checkout ? ["--checkout", checkout] : []),
      ...(ref ? ["--ref", ref] : []), ...(runId ? ["--run-id", String(runId)] : []),
    ];
    const r = this.asRunner(runner, args, { binds, env: { GITHUB_WORKSPACE: runner.workspace, RUNNER_TEMP: runner.temp } });
    check(r.code === 0 || r.code === 1, `the runner broke (exit ${r.code}):\n${r.log}`);
    return { ...r, result: JSON.parse(fs.readFileSync(resultFile, "utf8")) };
  }

  // Runs `argv` on `runner` as the user nobody, in `cwd` (default: its home), with a runner's
  // environment plus `env`, in a mount namespace of its own where `binds` are mounted first.
  // Any fbfs mount it leaves is unmounted and fails the test. Returns {code, log, compilers}.
  asRunner(runner, argv, { binds = [], env = {}, cwd = runner.home, path: extraPath = [] } = {}) {
    const vars = {
      HOME: runner.home, USER: "runner", LANG: "C.UTF-8",
      PATH: [...extraPath, `${this.tools}/bin`, "/usr/local/bin:/usr/bin:/bin"].join(":"), ...env,
    };
    const quote = (s) => `'${String(s).replace(/'/g, "'\\''")}'`;
    const script = [
      "set -u",
      ...binds.map(([from, to]) => `mount --bind ${quote(from)} ${quote(to)} || exit 90`),
      `cd ${quote(cwd)} || exit 90`,
      `setpriv --reuid=${nobody} --regid=${nobody} --clear-groups env -i ` +
        `${Object.entries(vars).map(([k, v]) => quote(`${k}=${v}`)).join(" ")} ${argv.map(quote).join(" ")}`,
      "rc=$?",
      // A job must leave no mount behind: report and undo any.
      `grep ' fuse.fbfs ' /proc/self/mounts | while read -r _ m _; do echo "left mounted: $m" >&2;` +
        ` ${quote(fbfsBinary)} umount "$m" || umount -l "$m"; done`,
      'exit "$rc"',
    ].join("\n");
    const r = spawnSync("unshare", ["--mount", "--propagation", "private", "bash", "-c", script], {
      encoding: "utf8", maxBuffer: 256 << 20,
    });
    const log = `${r.stdout}${r.stderr}`;
    if (process.env.FBFS_TEST_VERBOSE) {
      console.log(`---- on runner ${runner.name}: ${argv.slice(0, 2).join(" ")}\n${log}`);
    }
    check(r.status !== 90, `could not plant ${JSON.stringify(binds)} or enter ${cwd}: ${log}`);
    check(!log.includes("left mounted:"), `the job left an fbfs mount behind:\n${log}`);
    return { code: r.status, log, compilers: this.takeCompilerRuns() };
  }

  entries() {
    const dir = path.join(this.cache, "entries");
    return fs.existsSync(dir)
      ? fs.readdirSync(dir).filter((f) => f.endsWith(".json")).map((f) => ({
          ...JSON.parse(fs.readFileSync(path.join(dir, f), "utf8")), file: path.join(dir, f),
        }))
      : [];
  }

  close() {
    for (const m of this.mounts.reverse()) {
      spawnSync("umount", ["-l", m]);
    }
    fs.rmSync(this.root, { recursive: true, force: true });
  }

  // The cache entries of fbfs binaries: copied from `dir` into this world's cache (`into`), or
  // from this world's cache into `dir` (`out`), so one test builds fbfs and the others reuse it.
  shareBinaries(dir, direction) {
    const [from, to] = direction === "out" ? [path.join(this.cache, "entries"), dir] : [dir, path.join(this.cache, "entries")];
    fs.mkdirSync(to, { recursive: true });
    for (const f of fs.readdirSync(from).filter((f) => f.endsWith(".json"))) {
      const entry = JSON.parse(fs.readFileSync(path.join(from, f), "utf8"));
      if (entry.key.startsWith("fbfs-bin-")) {
        fs.copyFileSync(path.join(from, f), path.join(to, f));
        fs.copyFileSync(path.join(from, entry.archive), path.join(to, entry.archive));
      }
    }
    this.chownToRunner(this.cache);
  }
}

// Runs `cases` (name → function(world)) named on the command line, each in a World of its own,
// printing what failed; exit status 1 if any did.
export async function main(cases) {
  const chosen = process.argv.slice(2);
  let failed = 0;
  for (const name of chosen) {
    if (!cases[name]) {
      console.error(`no test case ${name} (have: ${Object.keys(cases).join(", ")})`);
      process.exit(2);
    }
    const world = new World(name);
    try {
      await cases[name](world);
      console.log(`ok: ${name}`);
    } catch (e) {
      failed++;
      console.log(`FAILED: ${name}: ${e instanceof Failure ? e.message : e.stack}`);
    } finally {
      world.close();
    }
  }
  process.exit(failed ? 1 : 0);
}
