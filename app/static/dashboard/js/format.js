// Formatting: exact money from the API's decimal strings, dates, status names and sentences.

/** "1250.5" -> 125050n (cents). Amounts arrive as exact decimal strings; never go through floats. */
export function toCents(value) {
  if (value === null || value === undefined || value === "") return 0n;
  const text = String(value).trim();
  const match = /^(-?)(\d*)(?:\.(\d*))?$/.exec(text);
  if (!match) throw new Error(`not a decimal amount: ${text}`);
  const [, sign, whole, fraction = ""] = match;
  const cents = BigInt(whole || "0") * 100n + BigInt((fraction + "00").slice(0, 2));
  return sign ? -cents : cents;
}

export function sumCents(values) {
  return values.reduce((total, value) => total + toCents(value), 0n);
}

const separatorsCache = new Map();

function separators(currency) {
  const key = currency || "";
  if (!separatorsCache.has(key)) {
    let parts = [];
    try {
      const options = currency ? { style: "currency", currency } : { minimumFractionDigits: 2 };
      parts = new Intl.NumberFormat(undefined, options).formatToParts(-1234.5);
    } catch {
      parts = new Intl.NumberFormat(undefined, { minimumFractionDigits: 2 }).formatToParts(-1234.5);
    }
    const find = (type, fallback) => (parts.find((p) => p.type === type) || { value: fallback }).value;
    const symbolIndex = parts.findIndex((p) => p.type === "currency");
    const integerIndex = parts.findIndex((p) => p.type === "integer");
    separatorsCache.set(key, {
      group: find("group", ","),
      decimal: find("decimal", "."),
      symbol: symbolIndex >= 0 ? parts[symbolIndex].value : "",
      symbolFirst: symbolIndex >= 0 && symbolIndex < integerIndex,
      spaced: symbolIndex >= 0 && /\s/.test((parts[symbolIndex + (symbolIndex < integerIndex ? 1 : -1)] || {}).value || ""),
    });
  }
  return separatorsCache.get(key);
}

/** Cents (BigInt) or a decimal string -> "$1,250.50" in the reader's locale, exactly. */
export function money(value, currency) {
  const cents = typeof value === "bigint" ? value : toCents(value);
  const s = separators(currency);
  const negative = cents < 0n;
  const abs = negative ? -cents : cents;
  const whole = (abs / 100n).toString().replace(/\B(?=(\d{3})+(?!\d))/g, s.group);
  const fraction = (abs % 100n).toString().padStart(2, "0");
  const number = `${whole}${s.decimal}${fraction}`;
  const space = s.spaced ? "\u00a0" : "";
  const withSymbol = !s.symbol ? number : s.symbolFirst ? `${s.symbol}${space}${number}` : `${number}${space}${s.symbol}`;
  return negative ? `\u2212${withSymbol}` : withSymbol;
}

export function dateTime(value) {
  if (!value) return "";
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  return new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" }).format(date);
}

export const STATUS_LABELS = {
  NOT_SENT: "Not sent",
  PENDING_ACCEPTANCE: "Ready to export",
  EXPORTING: "Exporting",
  AWAITING_POSTING: "Awaiting posting",
  EXPORT_FAILED: "Failed",
  SYNCED: "Synced",
  REJECTED: "Rejected",
  RETRIEVED: "Retrieved",
};

export function statusLabel(status) {
  return STATUS_LABELS[status] || status || "";
}

export const KIND_LABELS = { CREATE_BUDGET: "New budget", UPDATE_BUDGET: "Budget update" };

/** "BudgetSentToErp" -> "Budget sent to ERP". */
export function eventLabel(type) {
  const words = String(type || "")
    .replace(/Erp/g, "ERP")
    .replace(/([a-z])([A-Z])/g, "$1 $2")
    .split(" ");
  return words.map((w, i) => (i === 0 || w === "ERP" ? w : w.toLowerCase())).join(" ");
}

/** A server message ("lock the budget before sending it") as a sentence ("Lock the budget before sending it."). */
export function sentence(message) {
  const text = String(message || "").trim();
  if (!text) return "";
  const capital = text.charAt(0).toUpperCase() + text.slice(1);
  return /[.!?]$/.test(capital) ? capital : `${capital}.`;
}

export function permissionAtLeast(level, wanted) {
  const order = ["NONE", "READ_ONLY", "STANDARD", "ADMIN"];
  return order.indexOf(level) >= order.indexOf(wanted);
}
