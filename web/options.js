// Generation options checked against manifest.generation, the table written from
// compiler/generation.py (the same names, defaults and limits as the Python runtime and the CLI).

const bounds = ({ minimum, maximum, exclusive_minimum: exclusive }) =>
  [minimum !== undefined && `${exclusive ? ">" : ">="} ${minimum}`, maximum !== undefined && `<= ${maximum}`].filter(Boolean).join(" and ");

const CHECKS = {
  int: (v, row) => Number.isInteger(v) && inRange(v, row) ? v : fail(row, `an integer ${bounds(row)}`, v),
  number: (v, row) => typeof v === "number" && Number.isFinite(v) && inRange(v, row) ? v : fail(row, `a number ${bounds(row)}`, v),
  choice: (v, row) => row.choices.includes(v) ? v : fail(row, `one of ${row.choices.map((c) => JSON.stringify(c)).join(", ")}`, v),
  bool: (v, row) => typeof v === "boolean" ? v : fail(row, "true or false", v),
  seed: (v, row) => typeof v === "bigint" || Number.isSafeInteger(v) ? v : fail(row, "an integer (a BigInt above 2^53; leave it out for a random seed)", v),
  strings: (v, row) => {
    const stops = typeof v === "string" ? [v] : v;
    if (!Array.isArray(stops) || !stops.every((s) => typeof s === "string")) fail(row, "a string or an array of strings", v);
    if (stops.includes("")) throw new Error("stop strings must not be empty (an empty string would end generation at once)");
    return stops;
  },
};

function inRange(v, { minimum, maximum, exclusive_minimum: exclusive }) {
  const low = minimum === undefined || (exclusive ? v > minimum : v >= minimum);
  return low && (maximum === undefined || v <= maximum);
}

function fail(row, what, value) {
  const shown = typeof value === "string" ? JSON.stringify(value) : typeof value === "bigint" ? `${value}n` : String(value);
  throw new Error(`${row.jsName} must be ${what}, got ${shown}`);
}

/** Every option of generate() (or chat()) checked, the missing ones at their defaults (seed: null, a random one). */
export function resolveOptions(table, options, { chat = false } = {}) {
  const known = Object.entries(table).filter(([, row]) => chat || !row.chat_only);
  const names = new Set(known.map(([name]) => name));
  const unknown = Object.keys(options).filter((name) => !names.has(name) && options[name] !== undefined);
  if (unknown.length && unknown[0] in table) throw new Error(`${unknown[0]} is an option of chat(), not of generate()`);
  if (unknown.length) throw new Error(`unknown ${chat ? "chat" : "generation"} option "${unknown[0]}"; the options are ${[...names].join(", ")}`);
  const resolved = {};
  for (const [jsName, row] of known) {
    const value = options[jsName];
    resolved[jsName] = value === undefined ? row.default : CHECKS[row.kind](value, { ...row, jsName });
  }
  return resolved;
}
