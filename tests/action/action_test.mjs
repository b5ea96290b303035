// fbfs's GitHub Action, played the way runners run it (runner.mjs), on real fbfs mounts:
//
//   install      the first job builds fbfs from the action's source and caches it; a second
//                runner restores it and builds nothing
//   two-runners  the workflow of docs/CI_CACHE.md on runner A (cold), runner B (other home,
//                workspace and temp paths: 0 compiler runs, no new entry), runner C (one
//                source changed: only its object), runner D (nothing changed: no new entry), a
//                pull request (reads main's entry, saves nothing)
//   fail-open    no usable /dev/fuse, no fusermount3, one that is not setuid, fusermount3
//                refusing the mountpoint, a corrupt pack: each job builds and succeeds with one
//                warning naming the cause; a corrupt entry is replaced by the next save
//   shell-recipe the plain shell recipe of docs/CI_CACHE.md on two runners: B compiles nothing
//   bad-input    a volume line with a relative mountpoint fails the step, naming it
//
// node action_test.mjs CASE... as root, under `unshare --mount --propagation private` (ctest
// does both; see tests/CMakeLists.txt). FBFS_BINARY is the fbfs under test (for cleanup only:
// the jobs build and use the action's own), FBFS_ACTION_BINARIES the folder where `install`
// leaves the cached binary for the other cases.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { check, main, sourceDir } from "./world.mjs";

const docsWorkflow = { workflow: path.join(sourceDir, "docs/CI_CACHE.md"), block: "github" };
const testWorkflow = (name) => ({ workflow: path.join(sourceDir, "tests/action/workflows", `${name}.yml`) });
const binaries = process.env.FBFS_ACTION_BINARIES;

const warnings = (job) => job.result.annotations.filter((a) => a.level === "warning");
const errors = (job) => job.result.annotations.filter((a) => a.level === "error");
const stepOutputs = (job, id) => job.result.steps.find((s) => s.id === id)?.outputs ?? {};

function succeeded(job, what) {
  check(job.result.conclusion === "success", `${what}: the job failed:\n${job.log}`);
}

function noWarnings(job, what) {
  const list = job.result.annotations.filter((a) => a.level !== "notice");
  check(list.length === 0, `${what}: expected no warnings, got ${JSON.stringify(list)}\n${job.log}`);
}

// A small C project with a header, as the fail-open jobs build it.
function tinyProject(world) {
  const dir = path.join(world.root, "tiny");
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, "CMakeLists.txt"),
    "cmake_minimum_required(VERSION 3.16)\nproject(tiny C)\nadd_executable(app main.c util.c)\n");
  fs.writeFileSync(path.join(dir, "util.h"), "int twice(int x);\n");
  fs.writeFileSync(path.join(dir, "util.c"), '#include "util.h"\nint twice(int x) { return 2 * x; }\n');
  fs.writeFileSync(path.join(dir, "main.c"), '#include "util.h"\nint main(void) { return twice(0); }\n');
  return world.origin("tiny", dir);
}

const cases = {
  async install(world) {
    const origin = tinyProject(world);
    const first = world.job(world.runner("a", "hosted"), { ...testWorkflow("install"), checkout: origin.path });
    succeeded(first, "first install");
    check(first.log.includes("fbfs: building fbfs"), `the first job did not build fbfs:\n${first.log}`);
    check(world.entries().some((e) => e.key.startsWith("fbfs-bin-")), "no fbfs-bin- entry was saved");
    noWarnings(first, "first install");

    const second = world.job(world.runner("b", "self-hosted"), { ...testWorkflow("install"), checkout: origin.path });
    succeeded(second, "second install");
    check(!second.log.includes("fbfs: building fbfs"), `the second job built fbfs again:\n${second.log}`);
    check(/Cache restored from key: fbfs-bin-/.test(second.log), `the binary was not restored:\n${second.log}`);
    noWarnings(second, "second install");
    if (binaries) {
      world.shareBinaries(binaries, "out");
    }
  },

  async "two-runners"(world) {
    world.shareBinaries(binaries, "in");
    const origin = world.origin("googletest", "/usr/src/googletest");
    const job = (runner, extra = {}) => world.job(runner, { ...docsWorkflow, checkout: origin.path, ...extra });

    const a = job(world.runner("a", "hosted"));
    succeeded(a, "runner A");
    noWarnings(a, "runner A");
    check(a.compilers.sources.length >= 4, `runner A compiled ${a.compilers.sources}`);
    check(a.result.summary.includes("Saved as `fbfs-build-Linux-"), `runner A's summary:\n${a.result.summary}`);
    check(a.result.summary.includes("| ws |"), `runner A's summary has no volume table:\n${a.result.summary}`);
    check(!a.log.includes("fbfs: building fbfs"), "runner A built fbfs although it was cached");

    const afterA = world.entries().length;
    const b = job(world.runner("b", "self-hosted"));
    succeeded(b, "runner B");
    check(world.entries().length === afterA, "runner B, whose build wrote nothing new, saved an entry");
    check(b.result.summary.includes("Nothing changed"), `runner B's summary:\n${b.result.summary}`);
    noWarnings(b, "runner B");
    check(b.compilers.all.length === 0, `runner B ran the compiler:\n${b.compilers.all.join("\n")}`);
    check(stepOutputs(b, "fbfs")["cache-hit"] === "true", "runner B's cache-hit is not true");
    check(stepOutputs(b, "fbfs").workspace === "/tmp/fbfs/ws", "runner B's workspace is not the mount");

    fs.appendFileSync(path.join(origin.path, "googletest/src/gtest.cc"), "\nint fbfs_changed = 1;\n");
    origin.git("commit", "-qam", "one change");
    const c = job(world.runner("c", "hosted"));
    succeeded(c, "runner C");
    check(JSON.stringify(c.compilers.sources) === '["gtest-all.cc"]',
      `runner C compiled ${JSON.stringify(c.compilers.sources)}, not only gtest-all.cc`);

    // A run that changes nothing adds no entry: entries are one per change, not one per push.
    const saved = world.entries().length;
    const d = job(world.runner("d", "self-hosted"));
    succeeded(d, "runner D");
    check(d.compilers.all.length === 0, `runner D ran the compiler:\n${d.compilers.all.join("\n")}`);
    check(world.entries().length === saved, `runner D, which changed nothing, saved an entry:\n${d.result.summary}`);

    const pr = job(world.runner("pr", "self-hosted"), { event: "pull_request", ref: "refs/pull/7/merge" });
    succeeded(pr, "pull request");
    noWarnings(pr, "pull request");
    check(pr.compilers.all.length === 0, `the pull request ran the compiler:\n${pr.compilers.all.join("\n")}`);
    check(world.entries().length === saved, "the pull request saved a cache entry");
    check(pr.result.summary.includes("Not saved (save: false)"), `pull request summary:\n${pr.result.summary}`);
  },

  async "fail-open"(world) {
    world.shareBinaries(binaries, "in");
    const origin = tinyProject(world);
    let n = 0;
    const job = (extra = {}) => world.job(world.runner(`r${++n}`, n % 2 ? "hosted" : "self-hosted"),
      { ...docsWorkflow, checkout: origin.path, ...extra });

    const fellOpen = (what, cause, extra) => {
      const j = job(extra);
      succeeded(j, what);
      const w = warnings(j);
      check(w.length === 1 && w[0].message.includes(cause),
        `${what}: expected one warning naming "${cause}", got ${JSON.stringify(w)}\n${j.log}`);
      check(stepOutputs(j, "fbfs").mounted === "false", `${what}: mounted is not false`);
      check(j.compilers.sources.length === 2, `${what}: the build did not run: ${j.compilers.sources}`);
      check(j.result.summary.includes("fbfs was not in use"), `${what}: summary:\n${j.result.summary}`);
      return j;
    };
    fellOpen("0600 /dev/fuse", "/dev/fuse is not readable and writable by you",
      { binds: [[world.fuse.closed, "/dev/fuse"]] });
    fellOpen("no fusermount3", "fusermount3 is not installed", { binds: [["/dev/null", "/usr/bin/fusermount3"]] });
    const plain = path.join(world.root, "fusermount3-not-setuid");
    fs.copyFileSync("/usr/bin/fusermount3", plain);
    fs.chmodSync(plain, 0o755);
    fellOpen("fusermount3 not setuid", "/usr/bin/fusermount3 is not setuid root",
      { binds: [[plain, "/usr/bin/fusermount3"]] });
    // A mountpoint the runner cannot write, owned by root, stands for AppArmor: fusermount3
    // refuses it, and says why.
    fs.mkdirSync("/tmp/fbfs/ws", { recursive: true });
    fs.chownSync("/tmp/fbfs/ws", 0, 0);
    fs.chmodSync("/tmp/fbfs/ws", 0o755);
    try {
      fellOpen("fusermount3 refuses the mountpoint", "no write access to mountpoint /tmp/fbfs/ws");
    } finally {
      fs.rmdirSync("/tmp/fbfs/ws");
    }

    const good = job();
    succeeded(good, "a job that saves an entry");
    noWarnings(good, "a job that saves an entry");
    const [entry] = world.entries().filter((e) => e.key.startsWith("fbfs-build-"));
    corruptPack(world, path.join(path.dirname(entry.file), entry.archive));
    const corrupt = job();
    succeeded(corrupt, "a corrupt pack");
    const w = warnings(corrupt);
    check(w.length === 1 && w[0].message.includes("does not unpack"),
      `corrupt pack: expected one warning saying it does not unpack, got ${JSON.stringify(w)}`);
    check(stepOutputs(corrupt, "fbfs").mounted === "true", "corrupt pack: the volumes were not mounted");
    check(corrupt.compilers.sources.length === 2, "corrupt pack: the build did not start cold");
    const healed = job();
    succeeded(healed, "the job after a corrupt pack");
    noWarnings(healed, "the job after a corrupt pack");
    check(healed.compilers.all.length === 0, "the job after a corrupt pack compiled: the entry was not replaced");
  },

  // The plain shell recipe of docs/CI_CACHE.md, for any CI: FBFS_CACHE is the directory that
  // CI carries from job to job.
  async "shell-recipe"(world) {
    const recipe = /<!-- shell: any-ci -->\s*```bash\n([\s\S]*?)```/.exec(
      fs.readFileSync(docsWorkflow.workflow, "utf8"));
    check(recipe, "docs/CI_CACHE.md has no ```bash block after <!-- shell: any-ci -->");
    const origin = world.origin("googletest", "/usr/src/googletest");
    const carried = path.join(world.root, "ci-cache");
    fs.mkdirSync(carried);
    world.chownToRunner(carried);
    const bin = path.join(world.root, "bin");
    fs.mkdirSync(bin);
    fs.symlinkSync(process.env.FBFS_BINARY, path.join(bin, "fbfs"));
    const play = (name, layout) => {
      const runner = world.runner(name, layout);
      fs.writeFileSync(path.join(runner.root, "recipe.sh"), recipe[1]);
      const cloned = world.asRunner(runner, ["git", "clone", "-q", origin.path, runner.workspace]);
      check(cloned.code === 0, `git clone: ${cloned.log}`);
      return world.asRunner(runner, ["bash", path.join(runner.root, "recipe.sh")],
        { cwd: runner.workspace, env: { FBFS_CACHE: carried }, path: [bin] });
    };
    const a = play("a", "hosted");
    check(a.code === 0, `runner A's recipe failed:\n${a.log}`);
    check(a.compilers.sources.length >= 4, `runner A compiled ${a.compilers.sources}`);
    check(fs.existsSync(path.join(carried, "fbfs.pack")), `runner A left no pack:\n${a.log}`);
    const b = play("b", "self-hosted");
    check(b.code === 0, `runner B's recipe failed:\n${b.log}`);
    check(b.compilers.all.length === 0, `runner B ran the compiler:\n${b.compilers.all.join("\n")}`);
  },

  async "bad-input"(world) {
    const origin = tinyProject(world);
    const j = world.job(world.runner("a", "hosted"), { ...testWorkflow("bad-input"), checkout: origin.path });
    check(j.result.conclusion === "failure", "a relative mountpoint did not fail the job");
    check(errors(j).some((e) => e.title === "fbfs" && e.message.includes("mountpoint 'tmp/fbfs/ws' is not an absolute path")),
      `no error naming the mountpoint: ${JSON.stringify(j.result.annotations)}`);
    check(!j.log.includes("never reached"), "the job went on after the bad input");
  },
};

// Flips one byte in the middle of the pack inside a cache archive, and repacks the archive.
function corruptPack(world, archive) {
  const dir = path.join(world.root, "corrupt");
  fs.mkdirSync(dir);
  execFileSync("tar", ["--use-compress-program", "zstd -d", "-xf", archive, "-P", "-C", dir]);
  const pack = path.join(dir, ".fbfs-cache/pack/fbfs.pack");
  const bytes = fs.readFileSync(pack);
  bytes[Math.floor(bytes.length / 2)] ^= 0xff;
  fs.writeFileSync(pack, bytes);
  execFileSync("tar", ["--posix", "--use-compress-program", "zstd", "-cf", archive, "-P", "-C", dir, ".fbfs-cache/pack"]);
  fs.rmSync(dir, { recursive: true });
}

await main(cases);
