/**
 * A number in a push is stored in jsonb, which keeps it as an exact decimal and prints it without an
 * exponent, and is served as `JSON.stringify` prints the double that JSON.parse made of it. A number
 * that does not survive that trip is refused at the edge, naming the field:
 * - beyond the double range (`1e400` parses as Infinity and would be stored as null);
 * - with more precision than a double holds (`12345678901234567890`, `1e-400`): its value would change;
 * - whose stored form is longer than what was sent (`1e20` is stored as 21 digits): 4-byte numbers
 *   would let a 1 MiB body become a payload several times larger than anything the bus carries.
 * The check reads the request's JSON text, since the parsed value no longer tells how it was written.
 */

type Path = (string | number)[];

/** `{negative, digits, point}` with digits stripped of leading and trailing zeros; value = 0.digits × 10^point. */
function decimalParts(text: string): { negative: boolean; digits: string; point: number } {
  const match = /^(-?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/.exec(text);
  if (!match) return { negative: false, digits: '', point: 0 };
  const [, sign = '', whole = '', fraction = '', exponent = '0'] = match;
  let digits = whole + fraction;
  let point = whole.length + Number(exponent);
  const leading = digits.length - digits.replace(/^0+/, '').length;
  digits = digits.slice(leading);
  point -= leading;
  digits = digits.replace(/0+$/, '');
  return { negative: sign === '-' && digits !== '', digits, point: digits === '' ? 0 : point };
}

/** How PostgreSQL prints this decimal: plain digits, no exponent. */
function plainDecimal({ negative, digits, point }: ReturnType<typeof decimalParts>): string {
  if (digits === '') return '0';
  let plain: string;
  if (point >= digits.length) plain = digits + '0'.repeat(point - digits.length);
  else if (point > 0) plain = `${digits.slice(0, point)}.${digits.slice(point)}`;
  else plain = `0.${'0'.repeat(-point)}${digits}`;
  return negative ? `-${plain}` : plain;
}

const shown = (token: string) => (token.length > 40 ? `${token.slice(0, 37)}...` : token);

/** Why this JSON number token cannot be stored and served unchanged, or undefined when it can. */
export function unfaithfulNumber(token: string): string | undefined {
  // Most numbers are small integers, exact as doubles and printed the same everywhere.
  if (token.length <= 15 && /^-?(?:0|[1-9]\d*)$/.test(token)) return undefined;
  const value = Number(token);
  if (!Number.isFinite(value)) return `the number ${shown(token)} is outside the range of a double.`;
  const sent = decimalParts(token);
  const served = decimalParts(JSON.stringify(value));
  if (sent.digits !== served.digits || sent.point !== served.point)
    return `the number ${shown(token)} has more precision than a double holds.`;
  const stored = plainDecimal(served);
  if (stored.length > token.length)
    return `the number ${shown(token)} would be stored as ${shown(stored)}; send it in that form.`;
  return undefined;
}

/** Index just past the closing quote of the JSON string starting at `start`. */
function stringEnd(text: string, start: number): number {
  let index = start + 1;
  for (;;) {
    const quote = text.indexOf('"', index);
    if (quote < 0) return text.length;
    let backslashes = 0;
    while (text.charCodeAt(quote - 1 - backslashes) === 0x5c) backslashes++;
    if (backslashes % 2 === 0) return quote + 1;
    index = quote + 1;
  }
}

const isNumberStart = (code: number) => code === 0x2d || (code >= 0x30 && code <= 0x39);
const isNumberChar = (code: number) =>
  isNumberStart(code) || code === 0x2b || code === 0x2e || code === 0x45 || code === 0x65;

/**
 * The first number of a valid JSON text that cannot be stored unchanged (see unfaithfulNumber), with its
 * path, among those `relevant(path)` accepts (fields that are dropped anyway do not matter); one pass,
 * no recursion, so deep nesting cannot overflow it.
 */
export function findUnfaithfulNumber(
  text: string,
  relevant: (path: readonly (string | number)[]) => boolean = () => true,
): { path: Path; message: string } | undefined {
  const path: Path = [];
  const inArray: boolean[] = [];
  let expectKey = false;
  for (let index = 0; index < text.length; ) {
    const code = text.charCodeAt(index);
    if (code === 0x22) {
      const end = stringEnd(text, index);
      if (expectKey) {
        path[path.length - 1] = JSON.parse(text.slice(index, end)) as string;
        expectKey = false;
      }
      index = end;
    } else if (code === 0x7b || code === 0x5b) {
      inArray.push(code === 0x5b);
      path.push(code === 0x5b ? 0 : '');
      expectKey = code === 0x7b;
      index++;
    } else if (code === 0x7d || code === 0x5d) {
      inArray.pop();
      path.pop();
      index++;
    } else if (code === 0x2c) {
      if (inArray[inArray.length - 1]) (path[path.length - 1] as number)++;
      else expectKey = true;
      index++;
    } else if (isNumberStart(code)) {
      let end = index + 1;
      while (end < text.length && isNumberChar(text.charCodeAt(end))) end++;
      const message = unfaithfulNumber(text.slice(index, end));
      if (message && relevant(path)) return { path: [...path], message };
      index = end;
    } else {
      index++;
    }
  }
  return undefined;
}

/** The path of the first number that is not finite (a value built in code rather than parsed JSON). */
export function findNonFiniteNumber(value: unknown, path: Path = []): Path | undefined {
  if (typeof value === 'number') return Number.isFinite(value) ? undefined : path;
  if (value === null || typeof value !== 'object') return undefined;
  for (const [key, child] of Object.entries(value)) {
    const found = findNonFiniteNumber(child, [...path, Array.isArray(value) ? Number(key) : key]);
    if (found) return found;
  }
  return undefined;
}
