// Termshift's runner of Open Terms Archive JavaScript filters (driven by termshift/jsfilters/__init__.py).
//
// One long-lived process, reading one JSON request per line on stdin and writing one JSON answer
// per line on stdout. Requests:
//
//   {"op": "warm"}  Load jsdom (before the first page, so that its time does not count against a filter).
//   {"op": "analyze", "source": "...", "name": "X.filters.js"}
//       Parse the file with acorn, never run it: its exports (kind, parameter count, async),
//       its imports, and for a filters history file each entry's validUntil and parameters.
//   {"op": "load", "key": "...", "files": {"X.filters.js": "..."}, "main": "X.filters.js", "history": null}
//       Evaluate a service's filters module (and its history module) in a fresh vm context.
//   {"op": "apply", "html": "...", "url": "...", "context": {...}, "timeLimit": ms,
//    "calls": [{"key": "...", "name": "f", "version": null | index, "params": ..., "passParams": bool}]}
//       Parse the page with jsdom as OTA does, run the calls in order (each awaited), answer the
//       serialised document, or the first failure as OTA words it ("TypeError: ...").
//
// The process is started by Termshift inside a sandbox (Node's permission model: no file outside
// this folder, no child process, no worker; and, where the system allows, a network namespace
// without any interface). Filter code itself runs in a vm context holding only the globals below:
// no `process`, no `require`, and an `import` of anything but another filters file of the same
// collection resolves to a stub that throws.

import readline from 'node:readline';
import vm from 'node:vm';

import * as acorn from 'acorn';

const log = (...args) => process.stderr.write(`${args.join(' ')}\n`);
console.log = console.info = console.warn = console.error = console.debug = log; // stdout is the protocol

let jsdom; // loaded on the first "apply": analysing and loading do not need it

// ------------------------------------------------------------------------------------ analyze

function paramsInfo(params) {
  // Function.length semantics: parameters before the first default value or rest element.
  let length = 0;
  for (const param of params) {
    if (param.type === 'AssignmentPattern' || param.type === 'RestElement') break;
    length += 1;
  }
  return { params: params.length, length, rest: params.some(param => param.type === 'RestElement') };
}

function describeValue(node) {
  if (!node) return { kind: 'value' };
  if (node.type === 'FunctionExpression' || node.type === 'ArrowFunctionExpression') {
    return { kind: node.type === 'ArrowFunctionExpression' ? 'arrow' : 'function', async: node.async, ...paramsInfo(node.params) };
  }
  if (node.type === 'ArrayExpression') return { kind: 'array', elements: node.elements };
  return { kind: 'value' };
}

function propertyKey(property) {
  if (property.type !== 'Property' || property.computed) return null;
  return property.key.type === 'Identifier' ? property.key.name : String(property.key.value);
}

function historyEntries(elements) {
  return elements.map(element => {
    const entry = { line: element?.loc.start.line ?? null, validUntil: null, filter: null };
    if (!element || element.type !== 'ObjectExpression') return { ...entry, problem: 'an entry is not an object { validUntil, filter }' };
    for (const property of element.properties) {
      const key = propertyKey(property);
      if (key === 'validUntil') {
        if (property.value.type === 'Literal' && typeof property.value.value === 'string') entry.validUntil = property.value.value;
        else entry.problem = 'validUntil must be a date written as a string, such as \'2022-03-15T10:17:27Z\'';
      } else if (key === 'filter') {
        const value = property.method ? property.value : property.value;
        const described = describeValue(value);
        if (described.kind === 'function' || described.kind === 'arrow') entry.filter = described;
        else entry.problem = 'filter must be a function';
      }
    }
    if (!entry.filter && !entry.problem) entry.problem = 'an entry has no filter function';
    if (entry.validUntil === null && !entry.problem) entry.problem = 'an entry has no validUntil';
    return entry;
  });
}

function analyze({ source }) {
  let program;
  try {
    program = acorn.parse(source, { ecmaVersion: 'latest', sourceType: 'module', locations: true });
  } catch (error) {
    return { ok: false, error: `SyntaxError: ${error.message}`, line: error.loc?.line ?? null };
  }
  const functions = new Map(); // top-level declarations, to describe `export { name }`
  for (const statement of program.body) {
    const node = statement.type === 'ExportNamedDeclaration' && statement.declaration ? statement.declaration : statement;
    if (node.type === 'FunctionDeclaration') functions.set(node.id.name, { kind: 'function', async: node.async, ...paramsInfo(node.params) });
    if (node.type === 'VariableDeclaration') {
      for (const declarator of node.declarations) {
        if (declarator.id.type === 'Identifier') functions.set(declarator.id.name, describeValue(declarator.init));
      }
    }
  }
  const exports = {};
  const imports = [];
  const add = (name, info, node) => { exports[name] = { ...info, line: node.loc.start.line }; };
  for (const node of program.body) {
    if (node.type === 'ImportDeclaration') {
      imports.push({ source: node.source.value, names: node.specifiers.map(s => (s.type === 'ImportSpecifier' ? (s.imported.name ?? s.imported.value) : s.type === 'ImportDefaultSpecifier' ? 'default' : '*')), line: node.loc.start.line });
    } else if (node.type === 'ExportNamedDeclaration') {
      if (node.source) {
        imports.push({ source: node.source.value, names: node.specifiers.map(s => s.local.name ?? s.local.value), line: node.loc.start.line });
        for (const s of node.specifiers) add(s.exported.name ?? s.exported.value, { kind: 'reexport', from: node.source.value, imported: s.local.name ?? s.local.value }, node);
      } else if (node.declaration?.type === 'FunctionDeclaration') {
        add(node.declaration.id.name, functions.get(node.declaration.id.name) ?? { kind: 'function' }, node);
      } else if (node.declaration?.type === 'VariableDeclaration') {
        for (const declarator of node.declaration.declarations) {
          if (declarator.id.type === 'Identifier') add(declarator.id.name, describeValue(declarator.init), node);
        }
      } else {
        for (const s of node.specifiers) add(s.exported.name ?? s.exported.value, functions.get(s.local.name) ?? { kind: 'value' }, node);
      }
    } else if (node.type === 'ExportAllDeclaration') {
      imports.push({ source: node.source.value, names: ['*'], line: node.loc.start.line });
      if (node.exported) add(node.exported.name ?? node.exported.value, { kind: 'value' }, node);
      else exports['*'] = { kind: 'reexport-all', from: node.source.value, line: node.loc.start.line };
    } else if (node.type === 'ExportDefaultDeclaration') {
      add('default', { kind: 'value' }, node);
    }
  }
  for (const info of Object.values(exports)) {
    if (info.kind === 'array') {
      info.history = historyEntries(info.elements);
      delete info.elements;
    }
  }
  return { ok: true, exports, imports };
}

// --------------------------------------------------------------------------------------- load

const bundles = new Map(); // key -> { context, main: namespace | null, history: namespace | null }

function unavailableModule(specifier, names, context) {
  const message = `"${specifier}" is not available: filters cannot import modules other than the filters files `
    + 'of their collection (they run without network and file access; see docs/filters.md)';
  const exportNames = [...new Set(['default', ...names.filter(name => name !== '*' && name !== 'default')])];
  return new vm.SyntheticModule(exportNames, function init() {
    const refuse = function unavailable() { throw new Error(message); };
    for (const name of exportNames) this.setExport(name, refuse);
  }, { context, identifier: specifier });
}

const NO_NETWORK = 'fetch is not available: filters run without network access (see docs/filters.md)';

// Timers a filter started: all cleared when the page is done, so that nothing keeps running.
const timers = new Set();

function makeContext() {
  const timer = (start, clear) => [
    (callback, delay, ...args) => {
      const handle = start((...values) => { if (start === setTimeout) timers.delete(handle); callback(...values); },
        Math.min(Number(delay) || 0, 60_000), ...args);
      timers.add(handle);
      return handle;
    },
    handle => { timers.delete(handle); clear(handle); },
  ];
  const [sandboxSetTimeout, sandboxClearTimeout] = timer(setTimeout, clearTimeout);
  const [sandboxSetInterval, sandboxClearInterval] = timer(setInterval, clearInterval);
  const sandbox = {
    console: { log() {}, info() {}, warn() {}, error() {}, debug() {} },
    URL, URLSearchParams, TextEncoder, TextDecoder, atob, btoa, structuredClone, queueMicrotask,
    setTimeout: sandboxSetTimeout, clearTimeout: sandboxClearTimeout,
    setInterval: sandboxSetInterval, clearInterval: sandboxClearInterval,
    fetch() { return Promise.reject(new Error(NO_NETWORK)); },
  };
  return vm.createContext(sandbox, { name: 'filters', codeGeneration: { strings: true, wasm: false } });
}

function clearTimers() {
  for (const handle of timers) { clearTimeout(handle); clearInterval(handle); }
  timers.clear();
}

async function load({ key, files, main, history }) {
  const context = makeContext();
  const modules = new Map();
  const importedNames = source => {
    try {
      return analyze({ source }).imports ?? [];
    } catch { return []; }
  };
  const moduleFor = name => {
    if (!modules.has(name)) {
      modules.set(name, new vm.SourceTextModule(files[name], { context, identifier: name }));
    }
    return modules.get(name);
  };
  const linker = async (specifier, referencing) => {
    const relative = specifier.startsWith('./') ? decodeURIComponent(specifier.slice(2)) : null;
    if (relative !== null && !relative.includes('/') && Object.hasOwn(files, relative)) return moduleFor(relative);
    if (relative !== null || specifier.startsWith('/') || specifier.startsWith('../')) {
      throw new Error(`cannot import "${specifier}" in ${referencing.identifier}: only filters files of the same collection folder can be imported`);
    }
    const wanted = importedNames(files[referencing.identifier]).filter(entry => entry.source === specifier).flatMap(entry => entry.names);
    return unavailableModule(specifier, wanted, context);
  };
  const evaluate = async name => {
    if (!name) return null;
    const module = moduleFor(name);
    await module.link(linker);
    await module.evaluate({ timeout: 5000 });
    return module.namespace;
  };
  try {
    const bundle = { context, main: await evaluate(main), history: await evaluate(history) };
    bundles.set(key, bundle);
    return { ok: true };
  } catch (error) {
    return { ok: false, error: String(error) };
  }
}

// -------------------------------------------------------------------------------------- apply

function resolveFunction(bundle, call) {
  if (call.version === null || call.version === undefined) {
    const fn = bundle.main?.[call.name];
    if (typeof fn !== 'function') throw new Error(`"${call.name}" is not a function exported by the filters file`);
    return fn;
  }
  const entries = bundle.history?.[call.name];
  const entry = Array.isArray(entries) ? entries[call.version] : undefined;
  if (!entry || typeof entry.filter !== 'function') throw new Error(`entry ${call.version} of "${call.name}" in the filters history has no filter function`);
  return entry.filter;
}

class TimeLimitError extends Error {}

async function runCall(bundle, fn, args, timeLimit) {
  const started = Date.now();
  bundle.context.__termshiftCall = () => fn(...args);
  let result;
  try {
    result = vm.runInContext('__termshiftCall()', bundle.context, { timeout: timeLimit });
  } catch (error) {
    if (error?.code === 'ERR_SCRIPT_EXECUTION_TIMEOUT') throw new TimeLimitError();
    throw error;
  } finally {
    delete bundle.context.__termshiftCall;
  }
  if (result && typeof result.then === 'function') {
    let timer;
    const remaining = Math.max(timeLimit - (Date.now() - started), 1);
    const expired = new Promise((_, reject) => { timer = setTimeout(() => reject(new TimeLimitError()), remaining); });
    try {
      await Promise.race([result, expired]);
    } finally {
      clearTimeout(timer);
    }
  }
}

async function apply({ html, url, context, calls, timeLimit }) {
  jsdom ??= await import('jsdom');
  const dom = new jsdom.JSDOM(html, { url, virtualConsole: new jsdom.VirtualConsole() });
  const { document } = dom.window;
  try {
    for (const call of calls) {
      const bundle = bundles.get(call.key);
      if (!bundle) return { ok: false, name: call.name, error: 'Error: the filters file is not loaded', unloaded: true };
      // What jsdom offers a filter beyond the document: its window's DOM interfaces.
      for (const name of ['window', 'Node', 'NodeFilter', 'Element', 'HTMLElement', 'Text', 'Comment', 'DocumentFragment', 'DOMParser', 'Range']) {
        bundle.context[name] = name === 'window' ? dom.window : dom.window[name];
      }
      const contextArgument = { ...context, filter: [...context.filter] };
      const args = call.passParams ? [document, call.params, contextArgument] : [document, contextArgument];
      try {
        await runCall(bundle, resolveFunction(bundle, call), args, timeLimit);
      } catch (error) {
        if (error instanceof TimeLimitError) {
          return { ok: false, name: call.name, error: `Error: it ran for more than ${timeLimit / 1000} s, the time limit of a filter, and was stopped`, timeout: true };
        }
        let text;
        try { text = String(error); } catch { text = 'Error: (an error that cannot be shown)'; }
        return { ok: false, name: call.name, error: text };
      }
    }
    return { ok: true, html: dom.serialize() };
  } finally {
    clearTimers();
    dom.window.close();
  }
}

// ------------------------------------------------------------------------------------ protocol

async function warm() {
  jsdom ??= await import('jsdom');
  return { ok: true };
}

const operations = { analyze, load, apply, warm };
const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
let queue = Promise.resolve();
lines.on('line', line => {
  queue = queue.then(async () => {
    let answer;
    try {
      const request = JSON.parse(line);
      answer = await operations[request.op](request);
    } catch (error) {
      answer = { ok: false, error: `Error: the filters runner failed: ${error?.stack ?? error}` };
    }
    process.stdout.write(`${JSON.stringify(answer)}\n`);
  });
});
lines.on('close', () => queue.then(() => process.exit(0)));
