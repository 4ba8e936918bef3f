/**
 * Just enough PromQL to find the series an expression reads: every vector selector's metric name and
 * label matchers. Functions, aggregations, grouping label lists, ranges, numbers and operators are
 * stepped over. It is a checker for our own dashboards and rules, not a full parser: what it cannot
 * read it reports, so a construct it does not know fails the test rather than passing unchecked.
 */

export interface LabelMatcher {
  label: string;
  op: '=' | '!=' | '=~' | '!~';
  value: string;
}

export interface VectorSelector {
  name: string;
  matchers: LabelMatcher[];
}

type Token = { kind: 'ident' | 'string' | 'number' | 'punct'; text: string };

const GROUPING_KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);
const OTHER_KEYWORDS = new Set(['bool', 'and', 'or', 'unless', 'offset', 'inf', 'nan']);
const MATCH_OPS = new Set(['=', '!=', '=~', '!~']);

function tokenize(expr: string): Token[] {
  const tokens: Token[] = [];
  const pattern =
    /\s+|(?<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)|(?<number>\d+(?:\.\d+)?(?:e[+-]?\d+)?(?:ms|[smhdwy])?(?:\d+(?:ms|[smhdwy]))*)|(?<ident>[A-Za-z_:][A-Za-z0-9_:]*)|(?<punct>=~|!~|!=|==|>=|<=|[{}()[\],=<>+\-*/%^@:])/gy;
  let match: RegExpExecArray | null;
  let at = 0;
  for (;;) {
    pattern.lastIndex = at;
    match = pattern.exec(expr);
    if (!match) break;
    at = pattern.lastIndex;
    const groups = match.groups ?? {};
    if (groups.string !== undefined) tokens.push({ kind: 'string', text: unquote(groups.string) });
    else if (groups.number !== undefined) tokens.push({ kind: 'number', text: groups.number });
    else if (groups.ident !== undefined) tokens.push({ kind: 'ident', text: groups.ident });
    else if (groups.punct !== undefined) tokens.push({ kind: 'punct', text: groups.punct });
    if (at >= expr.length) break;
  }
  if (at < expr.length) throw new Error(`cannot read PromQL at "${expr.slice(at, at + 20)}" in: ${expr}`);
  return tokens;
}

function unquote(literal: string): string {
  if (literal.startsWith('`')) return literal.slice(1, -1);
  return literal.slice(1, -1).replace(/\\(.)/g, '$1');
}

/** The vector selectors of an expression, in order. Throws on what it cannot read. */
export function vectorSelectors(expr: string): VectorSelector[] {
  const tokens = tokenize(expr);
  const selectors: VectorSelector[] = [];
  const at = (index: number) => tokens[index];
  let index = 0;

  const readMatchers = (): LabelMatcher[] => {
    // at '{'
    const matchers: LabelMatcher[] = [];
    index++;
    while (at(index)?.text !== '}') {
      const label = at(index);
      const op = at(index + 1);
      const value = at(index + 2);
      if (label?.kind !== 'ident' || !op || !MATCH_OPS.has(op.text) || value?.kind !== 'string') {
        throw new Error(`cannot read the label matchers of: ${expr}`);
      }
      matchers.push({ label: label.text, op: op.text as LabelMatcher['op'], value: value.text });
      index += 3;
      if (at(index)?.text === ',') index++;
    }
    index++;
    return matchers;
  };

  while (index < tokens.length) {
    const token = at(index) as Token;
    const next = at(index + 1);
    if (token.kind === 'ident' && GROUPING_KEYWORDS.has(token.text)) {
      index++;
      // A label list, e.g. `by (le)`; group_left may also stand without one.
      if (at(index)?.text === '(') {
        while (at(index) && at(index)?.text !== ')') index++;
        index++;
      }
    } else if (token.kind === 'ident' && OTHER_KEYWORDS.has(token.text.toLowerCase())) {
      index++;
    } else if (
      token.kind === 'ident' &&
      (next?.text === '(' || (next?.kind === 'ident' && GROUPING_KEYWORDS.has(next.text)))
    ) {
      index++; // a function, or an aggregation (`sum(…)`, `sum by (…) (…)`); its arguments come next
    } else if (token.kind === 'ident') {
      index++;
      selectors.push({ name: token.text, matchers: at(index)?.text === '{' ? readMatchers() : [] });
    } else if (token.text === '{') {
      const matchers = readMatchers();
      const name = matchers.find((matcher) => matcher.label === '__name__' && matcher.op === '=');
      if (!name) throw new Error(`a selector without a metric name cannot be checked: ${expr}`);
      selectors.push({ name: name.value, matchers: matchers.filter((matcher) => matcher !== name) });
    } else if (token.text === '[') {
      while (at(index) && at(index)?.text !== ']') index++;
      index++;
    } else {
      index++;
    }
  }
  return selectors;
}

/** Grafana's variables, replaced by what they expand to for reading the expression. */
export function expandGrafanaVariables(expr: string, values: Record<string, string>): string {
  return expr.replace(/\$\{?(\w+)\}?/g, (whole, name: string) => values[name] ?? whole);
}
