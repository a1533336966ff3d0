// Quoting for SQL text built from catalog names and configured values, the way node-postgres's
// escapeIdentifier/escapeLiteral do it, without importing the driver into pure code.

export const quoteIdent = (name: string): string => `"${name.replaceAll('"', '""')}"`;

/** A string literal; a backslash makes it an E'' literal, so the text means the same under any standard_conforming_strings. */
export function quoteLiteral(value: string): string {
  const body = value.replaceAll("'", "''").replaceAll('\\', '\\\\');
  return body.includes('\\') ? ` E'${body}'` : `'${body}'`;
}
