// scripts/bench/ci-recipe: what a CI job costs with the recipe of docs/CI_CACHE.md against the
// same project cached the usual ways, each played by runner.mjs on real mounts:
//
//   fbfs       the workflow of docs/CI_CACHE.md (the fbfs actions)
//   build-dir  the build directory cached with actions/cache (tests/action/workflows/
//              baseline-build-dir.yml)
//   ccache     a ccache directory cached with actions/cache, as ccache-action does
//              (baseline-ccache.yml)
//
// Each side plays three jobs on fresh runners at the same paths (hosted runners' case; fbfs
// also works at other paths, which the tests show): cold (empty cache), warm (a fresh checkout
// of the same commit) and one change (a commit that changes one source file). The sides
// alternate in each round, rotating which goes first; medians over the rounds are printed.
// Compiler runs are counted by wrappers. The fbfs binary comes from the cache entry that the
// `action: install` test leaves (FBFS_ACTION_BINARIES), else the first job builds it, untimed.
//
// node ci_bench.mjs [ROUNDS] [PROJECT_DIR] as root under `unshare --mount`; see scripts/bench/ci-recipe.
import fs from "node:fs";
import path from "node:path";
import { World, sourceDir } from "./world.mjs";

const rounds = Number(process.argv[2] ?? 3);
const project = process.argv[3] ?? "/usr/src/googletest";
const changed = process.env.FBFS_BENCH_CHANGE ?? "googletest/src/gtest.cc";
const sides = {
  fbfs: { workflow: path.join(sourceDir, "docs/CI_CACHE.md"), block: "github" },
  "build-dir": { workflow: path.join(sourceDir, "tests/action/workflows/baseline-build-dir.yml") },
  ccache: { workflow: path.join(sourceDir, "tests/action/workflows/baseline-ccache.yml") },
};
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const world = new World("bench");
const figures = {};  // side → job → [{job, build, restore, save, compiles, entry}]
try {
  if (process.env.FBFS_ACTION_BINARIES && fs.existsSync(process.env.FBFS_ACTION_BINARIES)) {
    world.shareBinaries(process.env.FBFS_ACTION_BINARIES, "in");
  }
  const origin = world.origin("project", project);
  // Untimed: puts the fbfs binary in the cache if it is not there yet.
  world.job(world.runner("warm-up", "hosted"), { ...sides.fbfs, checkout: origin.path });
  world.takeCompilerRuns();

  let runId = 1000;
  for (let round = 0; round < rounds; round++) {
    const order = Object.keys(sides);
    for (let i = 0; i < round % order.length; i++) {
      order.push(order.shift());
    }
    for (const side of order) {
      // A cache of this side's own: other sides' entries and this side's earlier rounds gone.
      for (const e of world.entries().filter((e) => !e.key.startsWith("fbfs-bin-"))) {
        fs.rmSync(e.file);
        fs.rmSync(path.join(path.dirname(e.file), e.archive));
      }
      for (const job of ["cold", "warm", "one change"]) {
        if (job === "one change") {
          fs.appendFileSync(path.join(origin.path, changed), `\nint fbfs_bench_change_${round} = 1;\n`);
          origin.git("commit", "-qam", "one change");
        }
        const runner = world.runner("bench", "hosted", { fresh: true });
        const started = process.hrtime.bigint();
        const j = world.job(runner, { ...sides[side], checkout: origin.path, runId: ++runId });
        const wall = Number(process.hrtime.bigint() - started) / 1e9;
        if (j.result.conclusion !== "success") {
          throw new Error(`${side} ${job} failed:\n${j.log}`);
        }
        const step = (pred) => j.result.steps.filter(pred).reduce((t, s) => t + s.seconds, 0);
        const saved = world.entries().filter((e) => !e.key.startsWith("fbfs-bin-")).sort((a, b) => b.created - a.created)[0];
        const row = {
          job: wall,
          build: step((s) => s.name === "Build"),
          restore: step((s) => s.name.startsWith("actions/cache/restore") || /fbfs@/.test(s.name) && !s.name.includes("save")),
          save: step((s) => s.name.startsWith("actions/cache/save") || s.name.includes("/save@")),
          compiles: j.compilers.sources.length,
          entry: saved ? fs.statSync(path.join(path.dirname(saved.file), saved.archive)).size : 0,
        };
        ((figures[side] ??= {})[job] ??= []).push(row);
        console.log(`round ${round + 1} ${side.padEnd(9)} ${job.padEnd(10)} job ${row.job.toFixed(2)} s, build ${row.build.toFixed(2)} s, ${row.compiles} compiles`);
      }
      origin.git("reset", "-q", "--hard", "HEAD~1");
    }
  }
} finally {
  world.close();
}

console.log(`\nmedians over ${rounds} rounds (${path.basename(project)}; seconds; cache entry: the newest entry of the side after the job, compressed)`);
console.log("| side | job | whole job | build step | restore | save | compiler runs | cache entry |");
console.log("|---|---|--:|--:|--:|--:|--:|--:|");
for (const [side, jobs] of Object.entries(figures)) {
  for (const [job, rows] of Object.entries(jobs)) {
    const m = (k) => median(rows.map((r) => r[k]));
    console.log(`| ${side} | ${job} | ${m("job").toFixed(2)} | ${m("build").toFixed(2)} | ${m("restore").toFixed(2)} | ${m("save").toFixed(2)} | ${m("compiles")} | ${(m("entry") / 1024).toFixed(0)} KiB |`);
  }
}
