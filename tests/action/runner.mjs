// A GitHub Actions runner for one job, for tests: it plays a workflow job the way GitHub's runner
// does, so fbfs's composite actions and the workflow in docs/CI_CACHE.md run as written.
//
// - Expressions (${{ }}, if:) are evaluated by GitHub's own evaluator, @actions/expressions, with
//   the contexts github, runner, env, inputs, steps and job, and the functions success(),
//   failure(), always(), cancelled() and hashFiles().
// - run: steps run with the shells' GitHub command lines (bash --noprofile --norc -eo pipefail);
//   the file commands GITHUB_OUTPUT, GITHUB_ENV, GITHUB_PATH and GITHUB_STEP_SUMMARY, and the
//   workflow commands ::warning::, ::error::, ::notice::, ::group:: and ::add-mask:: work as on
//   GitHub; continue-on-error, working-directory and defaults.run too.
// - uses: a composite action (its action.yml: inputs with defaults, steps, outputs), mapped from
//   OWNER/REPO[/PATH]@REF to a local directory by --action OWNER/REPO=DIR; actions/checkout
//   clones --checkout into the workspace with git.
// - The one stand-in: GitHub's cache service is a local directory (--cache). actions/cache/restore
//   and actions/cache/save keep their inputs, outputs and rules (versions from the paths, prefix
//   restore-keys, newest first, branch scopes, immutable keys, warnings instead of failures),
//   and archives are made and extracted by actions/cache's own library (@actions/cache).
//
// node runner.mjs --workflow FILE [--block NAME] [--job ID] --cache DIR --action OWNER/REPO=DIR
//                 [--checkout REPO] [--event push|pull_request] [--ref REF] [--base-ref BRANCH]
//                 [--run-id N] [--result FILE]
// FILE is a workflow .yml, or a Markdown file whose ```yaml block follows <!-- workflow: NAME -->.
// GITHUB_WORKSPACE, HOME and RUNNER_TEMP come from the environment. Exit status 0 when the job
// succeeded, 1 when it failed; --result gets the job as JSON (conclusion, steps with outcomes and
// outputs, annotations, summary).
import { spawn } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import readline from "node:readline";
import { parseArgs } from "node:util";
import { Evaluator, Lexer, Parser, data } from "@actions/expressions";
import { truthy } from "@actions/expressions/result";
import YAML from "yaml";
import { minimatch } from "minimatch";
import * as cacheUtils from "@actions/cache/lib/internal/cacheUtils.js";
import * as cacheTar from "@actions/cache/lib/internal/tar.js";

const { values: opt } = parseArgs({
  options: {
    workflow: { type: "string" },
    block: { type: "string" },
    job: { type: "string" },
    cache: { type: "string" },
    action: { type: "string", multiple: true, default: [] },
    checkout: { type: "string" },
    event: { type: "string", default: "push" },
    ref: { type: "string" },
    "base-ref": { type: "string", default: "main" },
    "run-id": { type: "string", default: String(Date.now() % 1e9) },
    result: { type: "string" },
  },
});

const need = (name) => {
  const value = opt[name] ?? process.env[name];
  if (!value) {
    throw new Error(`runner: ${name} is required`);
  }
  return value;
};
const workspace = need("GITHUB_WORKSPACE");
const runnerTemp = need("RUNNER_TEMP");
const cacheDir = need("cache");
const defaultBranch = "main";
const ref = opt.ref ?? (opt.event === "pull_request" ? "refs/pull/1/merge" : `refs/heads/${defaultBranch}`);
const actionDirs = new Map(opt.action.map((a) => [a.split("=")[0].toLowerCase(), a.slice(a.indexOf("=") + 1)]));

// ---- the workflow ---------------------------------------------------------------------------

function loadWorkflow(file, block) {
  let text = fs.readFileSync(file, "utf8");
  if (file.endsWith(".md")) {
    const marker = `<!-- workflow: ${block} -->`;
    const at = text.indexOf(marker);
    const fence = at < 0 ? null : /```ya?ml\n([\s\S]*?)```/.exec(text.slice(at));
    if (!fence) {
      throw new Error(`runner: ${file} has no \`\`\`yaml block after ${marker}`);
    }
    text = fence[1];
  }
  return YAML.parse(text);
}

// ---- expressions ----------------------------------------------------------------------------

const toData = (value) => JSON.parse(JSON.stringify(value ?? null), data.reviver);

function walkFiles(dir, out = []) {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      walkFiles(full, out);
    } else if (entry.isFile()) {
      out.push(full);
    }
  }
  return out;
}

// hashFiles() as the runner computes it: the SHA-256 of the SHA-256 digests of the matching files
// under the workspace, '' when none match. Later patterns win; a leading ! excludes.
function hashFiles(...patterns) {
  const globs = patterns.map((p) => p.coerceString());
  const files = walkFiles(workspace)
    .filter((file) => {
      const rel = path.relative(workspace, file);
      let keep = false;
      for (const g of globs) {
        const negate = g.startsWith("!");
        const pattern = negate ? g.slice(1) : g;
        if (minimatch(rel, pattern.replace(/^\.\//, ""), { dot: true })) {
          keep = !negate;
        }
      }
      return keep;
    })
    .sort();
  if (files.length === 0) {
    return new data.StringData("");
  }
  const all = crypto.createHash("sha256");
  for (const file of files) {
    all.update(crypto.createHash("sha256").update(fs.readFileSync(file)).digest());
  }
  return new data.StringData(all.digest("hex"));
}

function functionsFor(status) {
  const fn = (name, minArgs, maxArgs, call) => ({ name, minArgs, maxArgs, call });
  return [
    fn("success", 0, 0, () => new data.BooleanData(status.failed === false)),
    fn("failure", 0, 0, () => new data.BooleanData(status.failed === true)),
    fn("always", 0, 0, () => new data.BooleanData(true)),
    fn("cancelled", 0, 0, () => new data.BooleanData(false)),
    fn("hashFiles", 1, 255, hashFiles),
  ];
}

function evaluate(text, scope) {
  const { tokens } = new Lexer(text).lex();
  const funcs = functionsFor(scope.status);
  const expr = new Parser(tokens, Object.keys(scope.contexts), funcs).parse();
  return new Evaluator(expr, toData(scope.contexts), new Map(funcs.map((f) => [f.name.toLowerCase(), f]))).evaluate();
}

// Replaces each ${{ expr }} in `text` by its value as a string.
function interpolate(text, scope) {
  if (typeof text !== "string") {
    return text === undefined || text === null ? "" : String(text);
  }
  let out = "";
  let at = 0;
  for (;;) {
    const start = text.indexOf("${{", at);
    if (start < 0) {
      return out + text.slice(at);
    }
    let i = start + 3;
    let quoted = false;
    while (i < text.length && (quoted || !text.startsWith("}}", i))) {
      if (text[i] === "'") {
        quoted = !quoted;
      }
      i++;
    }
    if (i >= text.length) {
      throw new Error(`runner: unclosed \${{ in: ${text}`);
    }
    out += text.slice(at, start) + evaluate(text.slice(start + 3, i), scope).coerceString();
    at = i + 2;
  }
}

// An if: condition: with no status function in it, success() && (condition), as GitHub reads it.
function condition(value, scope) {
  if (value === undefined || value === null || value === "") {
    return !scope.status.failed;
  }
  let text = String(value).trim();
  const wrapped = /^\$\{\{([\s\S]*)\}\}$/.exec(text);
  if (wrapped) {
    text = wrapped[1];
  }
  if (!/\b(success|failure|always|cancelled)\s*\(/.test(text)) {
    text = `success() && (${text})`;
  }
  return truthy(evaluate(text, scope));
}

// ---- the job's log: workflow commands ------------------------------------------------------

const job = { annotations: [], summary: "", masks: [] };
// @actions/cache logs through @actions/core, which writes ::debug:: commands to this process's
// stdout; GitHub hides them unless step debugging is on, and so does this runner.
const write = process.stdout.write.bind(process.stdout);
process.stdout.write = (chunk, ...rest) => (String(chunk).startsWith("::debug::") ? true : write(chunk, ...rest));
const unescapeData = (s) => s.replace(/%0D/g, "\r").replace(/%0A/g, "\n").replace(/%25/g, "%");
const mask = (line) => job.masks.reduce((l, m) => l.split(m).join("***"), line);

function logLine(line) {
  const command = /^::([a-z-]+)(?: ([^:]*))?::(.*)$/.exec(line);
  if (!command) {
    console.log(mask(line));
    return;
  }
  const [, name, props = "", message] = command;
  const properties = Object.fromEntries(
    props.split(",").filter(Boolean).map((p) => [p.slice(0, p.indexOf("=")), p.slice(p.indexOf("=") + 1)]),
  );
  if (["warning", "error", "notice"].includes(name)) {
    const text = unescapeData(message);
    job.annotations.push({ level: name, title: properties.title ?? "", message: text });
    console.log(mask(`${name}: ${properties.title ? properties.title + ": " : ""}${text}`));
  } else if (name === "add-mask") {
    job.masks.push(unescapeData(message));
  } else if (name === "group") {
    console.log(`▼ ${message}`);
  } else if (name === "endgroup") {
    console.log("▲");
  } else if (name !== "debug") {
    console.log(mask(line));
  }
}

// ---- file commands --------------------------------------------------------------------------

// NAME=VALUE and NAME<<DELIMITER ... DELIMITER lines, as GITHUB_OUTPUT and GITHUB_ENV hold them.
function readFileCommand(file) {
  const values = {};
  const lines = fs.existsSync(file) ? fs.readFileSync(file, "utf8").split("\n") : [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line === "") {
      continue;
    }
    const heredoc = /^([^=<]+)<<(.+)$/.exec(line);
    if (heredoc) {
      const body = [];
      for (i++; i < lines.length && lines[i] !== heredoc[2]; i++) {
        body.push(lines[i]);
      }
      if (i >= lines.length) {
        throw new Error(`runner: ${file}: no closing delimiter ${heredoc[2]}`);
      }
      values[heredoc[1]] = body.join("\n");
    } else if (line.includes("=")) {
      values[line.slice(0, line.indexOf("="))] = line.slice(line.indexOf("=") + 1);
    } else {
      throw new Error(`runner: ${file}: cannot read line '${line}'`);
    }
  }
  return values;
}

// ---- steps ----------------------------------------------------------------------------------

const shells = {
  bash: (f) => ["bash", ["--noprofile", "--norc", "-eo", "pipefail", f]],
  sh: (f) => ["sh", ["-e", f]],
};

async function runScript(step, scope, env) {
  const shell = interpolate(step.shell ?? scope.defaults?.run?.shell ?? "bash", scope);
  if (!shells[shell]) {
    throw new Error(`runner: shell ${shell} is not supported`);
  }
  const script = path.join(runnerTemp, `${crypto.randomUUID()}.sh`);
  fs.writeFileSync(script, interpolate(step.run, scope) + "\n");
  const files = {};
  for (const name of ["GITHUB_OUTPUT", "GITHUB_ENV", "GITHUB_PATH", "GITHUB_STEP_SUMMARY", "GITHUB_STATE"]) {
    files[name] = path.join(runnerTemp, "_runner_file_commands", `${name.toLowerCase()}_${crypto.randomUUID()}`);
    fs.mkdirSync(path.dirname(files[name]), { recursive: true });
    fs.writeFileSync(files[name], "");
  }
  const dir = interpolate(step["working-directory"] ?? scope.defaults?.run?.["working-directory"] ?? "", scope);
  const [program, args] = shells[shell](script);
  const child = spawn(program, args, {
    cwd: dir ? path.resolve(workspace, dir) : workspace,
    env: { ...env, ...files },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const pump = (stream) => new Promise((resolve) => {
    readline.createInterface({ input: stream }).on("line", logLine).on("close", resolve);
  });
  const exited = new Promise((resolve) => child.on("close", (code, signal) => resolve(signal ? 128 : code)));
  const [code] = await Promise.all([exited, pump(child.stdout), pump(child.stderr)]);
  fs.rmSync(script, { force: true });
  if (code !== 0) {
    logLine(`::error::Process completed with exit code ${code}.`);
  }
  const outputs = readFileCommand(files.GITHUB_OUTPUT);
  Object.assign(scope.jobEnv, readFileCommand(files.GITHUB_ENV));
  for (const dirLine of fs.readFileSync(files.GITHUB_PATH, "utf8").split("\n").filter(Boolean).reverse()) {
    scope.paths.unshift(dirLine);
  }
  job.summary += fs.readFileSync(files.GITHUB_STEP_SUMMARY, "utf8");
  return { ok: code === 0, outputs };
}

function stepEnv(step, scope) {
  const env = { ...process.env, ...scope.baseEnv, ...scope.jobEnv, ...scope.actionEnv };
  for (const [name, value] of Object.entries(step.env ?? {})) {
    env[name] = interpolate(value, scope);
  }
  env.PATH = [...scope.paths, env.PATH].join(":");
  return env;
}

function actionDir(uses) {
  const [target] = uses.split("@");
  if (target.startsWith("./")) {
    return path.resolve(workspace, target);
  }
  const parts = target.split("/");
  const root = actionDirs.get(parts.slice(0, 2).join("/").toLowerCase());
  return root ? path.join(root, ...parts.slice(2)) : null;
}

async function runUses(step, scope) {
  const uses = step.uses;
  const inputs = Object.fromEntries(
    Object.entries(step.with ?? {}).map(([k, v]) => [k, interpolate(v, scope)]),
  );
  const name = uses.split("@")[0];
  if (name === "actions/cache/restore") {
    return cacheRestore(inputs);
  }
  if (name === "actions/cache/save") {
    return cacheSave(inputs);
  }
  if (name === "actions/checkout") {
    return checkout();
  }
  const dir = actionDir(uses);
  if (!dir || !fs.existsSync(path.join(dir, "action.yml"))) {
    throw new Error(`runner: no action for ${uses} (map it with --action)`);
  }
  return runComposite(dir, inputs, scope);
}

async function runComposite(dir, given, outer) {
  const action = YAML.parse(fs.readFileSync(path.join(dir, "action.yml"), "utf8"));
  if (action.runs?.using !== "composite") {
    throw new Error(`runner: ${dir}/action.yml is not a composite action`);
  }
  const inputs = {};
  for (const [name, spec] of Object.entries(action.inputs ?? {})) {
    inputs[name] = name in given ? given[name] : interpolate(spec?.default ?? "", outer);
  }
  for (const name of Object.keys(given)) {
    if (!(name in (action.inputs ?? {}))) {
      logLine(`::warning::Unexpected input(s) '${name}', valid inputs are ${Object.keys(action.inputs ?? {})}`);
    }
  }
  const scope = {
    ...outer,
    contexts: { ...outer.contexts, inputs, steps: {}, github: { ...outer.contexts.github, action_path: dir } },
    status: { failed: false },
    actionEnv: { ...outer.actionEnv, GITHUB_ACTION_PATH: dir },
    defaults: undefined,
    record: null,
  };
  const ok = await runSteps(action.runs.steps ?? [], scope);
  const outputs = {};
  for (const [name, spec] of Object.entries(action.outputs ?? {})) {
    outputs[name] = interpolate(spec?.value ?? "", scope);
  }
  return { ok, outputs };
}

const outcomeOf = (result) => (result.ok ? "success" : "failure");

async function runSteps(steps, scope) {
  for (const [index, step] of steps.entries()) {
    const id = step.id ?? `__${index}`;
    scope.contexts.env = { ...scope.baseEnv, ...scope.jobEnv };
    let result = { ok: true, outputs: {}, skipped: true };
    const started = process.hrtime.bigint();
    if (condition(step.if, scope)) {
      console.log(`▶ ${step.name ?? step.uses ?? step.run.split("\n")[0]}`);
      try {
        result = step.uses ? await runUses(step, scope) : await runScript(step, scope, stepEnv(step, scope));
      } catch (e) {
        if (e.message.startsWith("runner:")) {
          throw e;
        }
        logLine(`::error::${e.message}`);
        result = { ok: false, outputs: {} };
      }
    }
    const continueOnError = condition(`${step["continue-on-error"] ?? false}`.replace(/^true$/, "always()"), scope);
    const outcome = result.skipped ? "skipped" : result.ok ? "success" : "failure";
    const conclusion = outcome === "failure" && continueOnError ? "success" : outcome;
    scope.contexts.steps[id] = { outputs: result.outputs, outcome, conclusion };
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    if (!result.skipped) {
      console.log(`◀ ${outcomeOf(result)} in ${seconds.toFixed(2)} s`);
    }
    scope.record?.push({ id, name: step.name ?? step.uses ?? "", outcome, conclusion, seconds, outputs: result.outputs });
    if (conclusion === "failure") {
      scope.status.failed = true;
    }
  }
  return !scope.status.failed;
}

// ---- actions/checkout and the cache service stand-in ----------------------------------------

async function checkout() {
  if (!opt.checkout) {
    throw new Error("runner: actions/checkout needs --checkout REPO");
  }
  const git = spawn("git", ["clone", "--quiet", opt.checkout, workspace], { stdio: "inherit" });
  const code = await new Promise((resolve) => git.on("close", resolve));
  return { ok: code === 0, outputs: {} };
}

// Where the runner starts a JavaScript action: in the workspace, which relative cache paths are
// resolved against and archived from.
function inWorkspace() {
  process.env.GITHUB_WORKSPACE = workspace;
  process.chdir(workspace);
}

const lines = (text) => (text ?? "").split("\n").map((s) => s.trim()).filter(Boolean);
const entriesDir = () => path.join(cacheDir, "entries");

function checkKeys(keys) {
  if (keys.length > 10) {
    throw new Error("Key Validation Error: Keys are limited to a maximum of 10.");
  }
  for (const key of keys) {
    if (key.length > 512) {
      throw new Error(`Key Validation Error: ${key} cannot be larger than 512 characters.`);
    }
    if (key.includes(",")) {
      throw new Error(`Key Validation Error: ${key} cannot contain commas.`);
    }
  }
}

function cacheEntries() {
  fs.mkdirSync(entriesDir(), { recursive: true });
  return fs.readdirSync(entriesDir())
    .filter((f) => f.endsWith(".json"))
    .map((f) => JSON.parse(fs.readFileSync(path.join(entriesDir(), f), "utf8")));
}

// The scopes a run may restore from: its own ref, a pull request's base branch, the default one.
function scopes() {
  const list = [ref];
  if (opt.event === "pull_request") {
    list.push(`refs/heads/${opt["base-ref"]}`);
  }
  list.push(`refs/heads/${defaultBranch}`);
  return [...new Set(list)];
}

function findEntry(key, restoreKeys, version) {
  const all = cacheEntries().filter((e) => e.version === version);
  const sameKey = (a, b) => a.localeCompare(b, undefined, { sensitivity: "accent" }) === 0;
  for (const scope of scopes()) {
    const inScope = all.filter((e) => e.scope === scope).sort((a, b) => b.created - a.created);
    const exact = inScope.find((e) => sameKey(e.key, key));
    if (exact) {
      return exact;
    }
    for (const prefix of restoreKeys) {
      const match = inScope.find((e) => e.key.startsWith(prefix));
      if (match) {
        return match;
      }
    }
  }
  return null;
}

async function cacheRestore(inputs) {
  const paths = lines(inputs.path);
  const key = inputs.key ?? "";
  const restoreKeys = lines(inputs["restore-keys"]);
  if (paths.length === 0 || !key) {
    throw new Error("Input required and not supplied: " + (paths.length === 0 ? "path" : "key"));
  }
  checkKeys([key, ...restoreKeys]);
  inWorkspace();
  const compression = await cacheUtils.getCompressionMethod();
  const entry = findEntry(key, restoreKeys, cacheUtils.getCacheVersion(paths, compression));
  const outputs = { "cache-primary-key": key };
  if (!entry) {
    console.log(`Cache not found for input keys: ${[key, ...restoreKeys].join(", ")}`);
    return { ok: true, outputs };
  }
  await cacheTar.extractTar(path.join(entriesDir(), entry.archive), compression);
  console.log(`Cache restored from key: ${entry.key}`);
  outputs["cache-hit"] = String(entry.key.localeCompare(key, undefined, { sensitivity: "accent" }) === 0);
  outputs["cache-matched-key"] = entry.key;
  return { ok: true, outputs };
}

async function cacheSave(inputs) {
  const paths = lines(inputs.path);
  const key = inputs.key ?? "";
  try {
    if (paths.length === 0 || !key) {
      throw new Error("Input required and not supplied: " + (paths.length === 0 ? "path" : "key"));
    }
    checkKeys([key]);
    inWorkspace();
    const compression = await cacheUtils.getCompressionMethod();
    const version = cacheUtils.getCacheVersion(paths, compression);
    const resolved = await cacheUtils.resolvePaths(paths);
    if (resolved.length === 0) {
      throw new Error("Path Validation Error: Path(s) specified in the action for caching do(es) not exist, hence no cache is being saved.");
    }
    if (cacheEntries().some((e) => e.key === key && e.version === version && e.scope === ref)) {
      throw new Error(`Failed to save: Unable to reserve cache with key ${key}, another job may be creating this cache.`);
    }
    const folder = fs.mkdtempSync(path.join(runnerTemp, "cache-"));
    await cacheTar.createTar(folder, resolved, compression);
    const archive = `${crypto.randomUUID()}${cacheUtils.getCacheFileName(compression).replace(/^cache/, "")}`;
    fs.copyFileSync(path.join(folder, cacheUtils.getCacheFileName(compression)), path.join(entriesDir(), archive));
    fs.rmSync(folder, { recursive: true, force: true });
    const entry = { key, version, scope: ref, created: Date.now(), archive };
    fs.writeFileSync(path.join(entriesDir(), archive + ".json"), JSON.stringify(entry));
    console.log(`Cache saved with key: ${key}`);
  } catch (e) {
    logLine(`::warning::${e.message}`);
  }
  return { ok: true, outputs: {} };
}

// ---- the job --------------------------------------------------------------------------------

async function main() {
  const workflow = loadWorkflow(opt.workflow, opt.block);
  const jobId = opt.job ?? Object.keys(workflow.jobs)[0];
  const spec = workflow.jobs[jobId];
  fs.mkdirSync(workspace, { recursive: true });
  const baseEnv = {
    CI: "true",
    GITHUB_ACTIONS: "true",
    GITHUB_WORKSPACE: workspace,
    GITHUB_RUN_ID: opt["run-id"],
    GITHUB_RUN_ATTEMPT: "1",
    GITHUB_JOB: jobId,
    GITHUB_EVENT_NAME: opt.event,
    GITHUB_REF: ref,
    GITHUB_BASE_REF: opt.event === "pull_request" ? opt["base-ref"] : "",
    GITHUB_REPOSITORY: "example/project",
    RUNNER_OS: "Linux",
    RUNNER_ARCH: "X64",
    RUNNER_TEMP: runnerTemp,
  };
  const scope = {
    baseEnv: {},
    jobEnv: {},
    actionEnv: {},
    paths: [],
    defaults: spec.defaults,
    status: { failed: false },
    record: [],
    contexts: {
      github: {
        workspace, run_id: baseEnv.GITHUB_RUN_ID, run_attempt: "1", job: jobId,
        event_name: opt.event, ref, base_ref: baseEnv.GITHUB_BASE_REF, repository: "example/project",
      },
      runner: { os: "Linux", arch: "X64", temp: runnerTemp },
      job: { status: "success" },
      env: {},
      steps: {},
    },
  };
  Object.assign(process.env, baseEnv);
  for (const [name, value] of Object.entries({ ...workflow.env, ...spec.env })) {
    scope.contexts.env = { ...scope.baseEnv };
    scope.baseEnv[name] = interpolate(value, scope);
  }
  let ok = false;
  if (condition(spec.if, scope)) {
    ok = await runSteps(spec.steps ?? [], scope);
  }
  const result = { conclusion: ok ? "success" : "failure", steps: scope.record, annotations: job.annotations, summary: job.summary };
  if (opt.result) {
    fs.writeFileSync(opt.result, JSON.stringify(result, null, 2));
  }
  console.log(`job ${jobId}: ${result.conclusion}`);
  process.exitCode = ok ? 0 : 1;
}

main().catch((e) => {
  console.error(e.message);
  process.exitCode = 2;
});
