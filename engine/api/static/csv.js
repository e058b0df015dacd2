// CSV to situation rows, in the browser (CSV 解析): one file per entity, the first line names the fields.
// Numbers become numbers, true/false booleans, empty cells are left out. Fields the policy declares as
// text or dates, the id and links to other rows stay text.

export function parseCSV(text) {
  const rows = [];
  let row = [], cell = "", quoted = false, i = 0;
  const s = text.replace(/^\uFEFF/, "");
  while (i < s.length) {
    const c = s[i];
    if (quoted) {
      if (c === '"') {
        if (s[i + 1] === '"') { cell += '"'; i += 2; continue; }
        quoted = false; i += 1; continue;
      }
      cell += c; i += 1; continue;
    }
    if (c === '"' && cell === "") { quoted = true; i += 1; continue; }
    if (c === ",") { row.push(cell); cell = ""; i += 1; continue; }
    if (c === "\r" || c === "\n") {
      row.push(cell); cell = "";
      rows.push(row); row = [];
      i += c === "\r" && s[i + 1] === "\n" ? 2 : 1;
      continue;
    }
    cell += c; i += 1;
  }
  if (cell !== "" || row.length) { row.push(cell); rows.push(row); }
  return rows.filter((r) => r.some((x) => x.trim() !== ""));
}

const NUMBER = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;

export function cellValue(raw, type) {
  const v = raw.trim();
  if (v === "") return undefined;
  if (type === "string" || type === "date" || type === "text") return v;
  const low = v.toLowerCase();
  if (low === "true") return true;
  if (low === "false") return false;
  if (NUMBER.test(v)) return Number(v);
  return v;
}

// types: {field: "number"|"bool"|"string"|"date"|"text"} for this entity (from the policy), optional.
export function rowsFromCSV(text, types = {}) {
  const table = parseCSV(text);
  if (!table.length) return [];
  const header = table[0].map((h) => h.trim());
  const out = [];
  for (const cells of table.slice(1)) {
    const row = {};
    header.forEach((name, j) => {
      if (!name) return;
      const type = name === "id" ? "text" : types[name];
      const value = cellValue(cells[j] ?? "", type);
      if (value !== undefined) row[name] = value;
    });
    if (Object.keys(row).length) out.push(row);
  }
  return out;
}

// "community.csv" → "community"; "2024_claims-claim.csv" → "claim" when claim is a known entity.
export function entityFromFileName(name, known = []) {
  const stem = name.replace(/\.[^.]*$/, "").toLowerCase();
  if (!known.length) return stem;
  if (known.includes(stem)) return stem;
  const word = (k) => new RegExp(`(^|[^a-z])${k}s?([^a-z]|$)`).test(stem);
  return [...known].sort((a, b) => b.length - a.length).find(word) || null;
}
