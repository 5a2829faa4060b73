// RFC 4180 CSV through csv-stringify: CRLF records, quoting where needed, and cells that a
// spreadsheet would run as a formula (= + - @, tab, CR) neutralised with a leading quote.

import { stringify } from "csv-stringify/sync";

export function csvRows(rows: unknown[][]): string {
  return stringify(rows, { record_delimiter: "windows", escape_formulas: true });
}
