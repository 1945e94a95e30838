// The relaxed build's int8 dot comes in forms that give the same sums, and which is faster depends on the
// engine and the CPU (wasm_kernels/bitnet.h, bn_set_dot_form). Each form the module accepts (a number; it
// answers another for one it does not have) is run once at start, so that the engine's optimizing tier
// compiles while the weights load, then timed on the memory at `base` (bn_dot_form_probe: the kernels' own
// step); the fastest is kept. Many short rounds: on a busy machine each form gets some the OS does not interrupt.
const PROBE = { reps: 8000, rounds: 11 };

export function dotForms(exports) {
  const forms = [];
  for (let form = 0; exports.bn_set_dot_form(form) === form; form++) forms.push(form);
  return forms;
}

function runDotForm({ exports, base }, form) {
  exports.bn_set_dot_form(form);
  const start = performance.now();
  exports.bn_dot_form_probe(base, PROBE.reps);
  return performance.now() - start;
}

export const warmDotForms = (machine) => dotForms(machine.exports).forEach((form) => runDotForm(machine, form));

// machine: { exports, base }; returns the form now in use
export function pickDotForm(machine) {
  const forms = dotForms(machine.exports);
  const fastest = new Map(forms.map((form) => [form, Infinity]));
  for (let round = 0; round < PROBE.rounds; round++)
    for (const form of forms) fastest.set(form, Math.min(fastest.get(form), runDotForm(machine, form)));
  return machine.exports.bn_set_dot_form(forms.reduce((a, b) => (fastest.get(b) < fastest.get(a) ? b : a)));
}
