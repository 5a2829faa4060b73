// RFC 4180 CSV through csv-stringify: CRLF records, quoting where needed, and cells that a
// spreadsheet would run as a formula neutralised with a leading quote.

import { stringify } from "csv-stringify/sync";

// What a spreadsheet reads as the start of a formula (OWASP's CSV injection list, with the
// full-width forms Apple Numbers normalises): = + - @, tab and CR.
const FORMULA_START = /^[=+\-@\t\r\uFF1D\uFF0B\uFF0D\uFF20]/;
// A cell that is only a signed number is a number to a spreadsheet, not a formula: an E.164
// phone number (+14155550123) or a negative amount stays as written, so the file re-imports.
const SIGNED_NUMBER = /^[+-]\d+(\.\d+)?$/;

/** The cell as written, or with a leading ' when a spreadsheet would evaluate it. */
export function neutraliseFormula(cell: string): string {
  return FORMULA_START.test(cell) && !SIGNED_NUMBER.test(cell) ? `'${cell}` : cell;
}

export function csvRows(rows: unknown[][]): string {
  return stringify(rows, { record_delimiter: "windows", cast: { string: neutraliseFormula } });
}
