import fc from 'fast-check';

/** Generators of hostile write requests: random JSON, mutated valid bodies, odd headers. */

export type Credential = 'writer' | 'reader' | 'outsider' | 'missing' | 'garbage' | 'basic';
export type Project = 'own' | 'outsiders' | 'garbage';

export interface BadRequest {
  method: 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  project: Project;
  alias: boolean;
  credential: Credential;
  garbageCredential: string;
  contentType: string | undefined;
  body: string;
}

const MIB = 1024 * 1024;
const LONE_SURROGATES = ['\uD800', '\uDFFF', 'a\uDBFFb'];

const sessionIdArb = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.constantFrom('s-1', 's-2', 's-3', 'dotted.id', 'ünï-cødé-🧙', 'run-2026-01-02T03:04:05Z'),
  },
  { weight: 2, arbitrary: fc.string({ minLength: 0, maxLength: 300, unit: 'grapheme' }) },
  { weight: 1, arbitrary: fc.string({ minLength: 1, maxLength: 20, unit: 'binary' }) },
);
const routingIdArb = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('wf', 'posthog-integration', 'a.b', 'x_y-z') },
  { weight: 1, arbitrary: fc.string({ maxLength: 300 }) },
);
const statusArb = fc.oneof(
  { weight: 15, arbitrary: fc.constantFrom('pending', 'in_progress', 'completed', 'failed', 'canceled') },
  { weight: 1, arbitrary: fc.constantFrom('pizza', 'COMPLETED', '', 'skipped') },
);
const taskArb = fc.record({
  id: fc.oneof(
    { weight: 9, arbitrary: fc.string({ maxLength: 10 }) },
    { weight: 1, arbitrary: fc.constant('x'.repeat(256)) },
  ),
  title: fc.oneof(
    { weight: 9, arbitrary: fc.string({ maxLength: 40, unit: 'grapheme' }) },
    { weight: 1, arbitrary: fc.constant('t'.repeat(2001)) },
  ),
  status: statusArb,
});
/** ISO-8601 date-times across the whole range of years, fractions and offsets (valid or not for storage). */
const timestampArb = fc
  .record({
    year: fc.oneof(fc.constantFrom(1, 2, 1969, 1970, 2026, 9998, 9999), fc.integer({ min: 1, max: 9999 })),
    month: fc.integer({ min: 1, max: 12 }),
    day: fc.integer({ min: 1, max: 28 }),
    hour: fc.integer({ min: 0, max: 23 }),
    minute: fc.integer({ min: 0, max: 59 }),
    fraction: fc.stringMatching(/^(\.[0-9]{1,9})?$/),
    offset: fc.oneof(
      fc.constant('Z'),
      fc
        .tuple(fc.constantFrom('+', '-'), fc.integer({ min: 0, max: 23 }), fc.integer({ min: 0, max: 59 }))
        .map(
          ([sign, hours, minutes]) =>
            `${sign}${String(hours).padStart(2, '0')}:${String(minutes).padStart(2, '0')}`,
        ),
    ),
  })
  .map(
    ({ year, month, day, hour, minute, fraction, offset }) =>
      `${String(year).padStart(4, '0')}-${String(month).padStart(2, '0')}-${String(day).padStart(2, '0')}T${String(hour).padStart(2, '0')}:${String(minute).padStart(2, '0')}:00${fraction}${offset}`,
  );

/** Number tokens as a client may write them: huge, tiny, too precise, or exponent forms. */
const numberTokenArb = fc.oneof(
  fc.constantFrom('1e20', '1e400', '-1e400', '1e-400', '5e-324', '12345678901234567890', '1.0', '-0', '1e21'),
  fc
    .tuple(fc.integer({ min: -9, max: 9 }), fc.integer({ min: -400, max: 400 }))
    .map(([mantissa, exponent]) => `${mantissa}e${exponent}`),
  fc
    .double()
    .filter(Number.isFinite)
    .map((value) => JSON.stringify(value)),
  fc.bigInt({ min: -(10n ** 25n), max: 10n ** 25n }).map(String),
);

const pendingInputArb = fc.record(
  {
    id: fc.oneof(fc.constant('q1'), fc.constant(''), fc.constant('q'.repeat(256))),
    asked_at: fc.oneof(
      fc.constant('2026-01-02T03:04:05.000Z'),
      fc.constant('yesterday'),
      fc.constant(null),
      timestampArb,
    ),
    question_count: fc.integer({ min: -1, max: 101 }),
    sensitive: fc.boolean(),
    prompts: fc.oneof(
      fc.array(fc.string({ maxLength: 30 }), { maxLength: 11 }),
      fc.constant(['p'.repeat(2001)]),
      fc.constant([1, 2]),
    ),
  },
  { requiredKeys: ['id', 'question_count'] },
);

const validBodyArb = fc.record({
  session_id: sessionIdArb,
  workflow_id: routingIdArb,
  skill_id: routingIdArb,
  started_at: fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom('2026-01-02T03:04:05Z', '2026-01-02T03:04:05.123+02:00') },
    { weight: 3, arbitrary: timestampArb },
    { weight: 1, arbitrary: fc.constantFrom('not a date', '2026-13-45T99:00:00Z') },
  ),
  run_phase: fc.oneof(
    { weight: 5, arbitrary: fc.constantFrom('idle', 'running', 'completed', 'error') },
    { weight: 1, arbitrary: fc.constantFrom('exploded', 'RUNNING', '') },
  ),
  tasks: fc.array(taskArb, { maxLength: 4 }),
  event_plan: fc.oneof(
    fc.constant(undefined),
    fc.constant(null),
    fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 3 })),
  ),
  error: fc.oneof(
    fc.constant(undefined),
    fc.constant(null),
    fc.constant({ type: 'wizard_error', message: 'boom' }),
    fc.constant('a string'),
  ),
  pending_input: fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom(undefined, null) },
    { weight: 1, arbitrary: pendingInputArb },
  ),
  handoff_text: fc.oneof(
    fc.constant(undefined),
    fc.constant(null),
    fc.constant(''),
    fc.string({ maxLength: 200, unit: 'grapheme' }),
    fc.constant('  indented\n# report\n'),
  ),
  timestamp: fc.constant('2026-01-02T03:04:05Z'),
});

type Body = Record<string, unknown>;
const FIELDS = [
  'session_id',
  'workflow_id',
  'skill_id',
  'started_at',
  'run_phase',
  'tasks',
  'event_plan',
  'error',
  'pending_input',
  'handoff_text',
];
const STRING_FIELDS = ['session_id', 'workflow_id', 'skill_id', 'handoff_text'];

/** One edit of a body: the ways a client (or an attacker) gets a push wrong. */
const mutationArb: fc.Arbitrary<(body: Body) => Body> = fc.oneof(
  fc
    .tuple(fc.constantFrom(...FIELDS), fc.jsonValue({ maxDepth: 2 }))
    .map(([field, value]) => (body: Body) => ({ ...body, [field]: value })),
  fc.constantFrom(...FIELDS).map((field) => (body: Body) => {
    const { [field]: _removed, ...rest } = body;
    return rest;
  }),
  fc
    .dictionary(fc.string({ maxLength: 12 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 4 })
    .map((extra) => (body: Body) => ({ ...extra, ...body })),
  fc
    .tuple(fc.constantFrom(...STRING_FIELDS), fc.integer({ min: 256, max: 70_000 }))
    .map(([field, length]) => (body: Body) => ({ ...body, [field]: 'x'.repeat(length) })),
  fc
    .tuple(fc.constantFrom(...STRING_FIELDS), fc.constantFrom('\u0000', ...LONE_SURROGATES))
    .map(([field, bad]) => (body: Body) => ({ ...body, [field]: `a${bad}b` })),
  fc.constantFrom('\u0000', ...LONE_SURROGATES).map((bad) => (body: Body) => ({
    ...body,
    event_plan: { [`key${bad}`]: 1 },
    error: { message: `m${bad}` },
  })),
  fc
    .tuple(
      fc.constantFrom('session_id', 'handoff_text', 'workflow_id'),
      fc.string({ minLength: 1, maxLength: 50, unit: 'binary' }),
    )
    .map(([field, text]) => (body: Body) => ({ ...body, [field]: text })),
  fc
    .constantFrom('tasks', 'pending_input', 'event_plan')
    .map((field) => (body: Body) => ({ ...body, [field]: 'not-the-right-type' })),
);

/** Deeply nested JSON is spliced in as text: building it as an object would need a deep recursion here. */
const NESTED_MARKER = '"__nested__"';
function nested(depth: number, asArray: boolean): string {
  return asArray
    ? `${'['.repeat(depth)}1${']'.repeat(depth)}`
    : `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
}

const bodyTextArb: fc.Arbitrary<string> = fc.oneof(
  {
    weight: 24,
    arbitrary: fc
      .tuple(validBodyArb, fc.array(mutationArb, { maxLength: 2 }))
      .map(([body, edits]) => JSON.stringify(edits.reduce((acc, edit) => edit(acc), body as Body))),
  },
  { weight: 24, arbitrary: validBodyArb.map((body) => JSON.stringify(body)) },
  { weight: 6, arbitrary: fc.jsonValue().map((value) => JSON.stringify(value)) },
  { weight: 3, arbitrary: fc.string({ maxLength: 200, unit: 'binary' }) },
  {
    weight: 3,
    arbitrary: validBodyArb.chain((body) =>
      fc
        .integer({ min: 0, max: JSON.stringify(body).length })
        .map((cut) => JSON.stringify(body).slice(0, cut)),
    ),
  },
  {
    weight: 3,
    arbitrary: fc
      .tuple(
        validBodyArb,
        fc.integer({ min: 10, max: 20_000 }),
        fc.boolean(),
        fc.constantFrom('event_plan', 'error', 'tasks'),
      )
      .map(([body, depth, asArray, field]) =>
        JSON.stringify({ ...body, [field]: '__nested__' }).replace(NESTED_MARKER, nested(depth, asArray)),
      ),
  },
  // Numbers spliced in as written (JSON.stringify would print them its own way), in kept and dropped fields.
  {
    weight: 3,
    arbitrary: fc
      .tuple(
        validBodyArb,
        fc.array(numberTokenArb, { minLength: 1, maxLength: 5 }),
        fc.constantFrom('event_plan', 'error', 'timestamp'),
      )
      .map(([body, tokens, field]) =>
        JSON.stringify({ ...body, [field]: '__numbers__' }).replace(
          '"__numbers__"',
          `{"n":[${tokens.join(',')}]}`,
        ),
      ),
  },
  // Nesting around the 64-level limit, and wide objects and arrays.
  {
    weight: 2,
    arbitrary: fc
      .tuple(validBodyArb, fc.integer({ min: 58, max: 68 }), fc.boolean())
      .map(([body, depth, asArray]) =>
        JSON.stringify({ ...body, event_plan: '__nested__' }).replace(
          NESTED_MARKER,
          asArray ? `{"a":${nested(depth, true)}}` : nested(depth, false),
        ),
      ),
  },
  {
    weight: 2,
    arbitrary: fc
      .tuple(validBodyArb, fc.integer({ min: 100, max: 20_000 }), fc.boolean())
      .map(([body, width, asArray]) =>
        JSON.stringify({
          ...body,
          event_plan: asArray
            ? { items: Array.from({ length: width }, (_, index) => index) }
            : Object.fromEntries(Array.from({ length: width }, (_, index) => [`k${index}`, index % 7])),
        }),
      ),
  },
  // Over the 1 MiB limit: 413, whatever else is wrong with it. Rare: each is a megabyte on the wire.
  {
    weight: 1,
    arbitrary: validBodyArb.map((body) => JSON.stringify({ ...body, handoff_text: 'h'.repeat(MIB) })),
  },
);

export const badRequestArb: fc.Arbitrary<BadRequest> = fc.record({
  method: fc.oneof(
    { weight: 30, arbitrary: fc.constant('POST' as const) },
    { weight: 1, arbitrary: fc.constantFrom('PUT' as const, 'PATCH' as const, 'DELETE' as const) },
  ),
  project: fc.oneof(
    { weight: 12, arbitrary: fc.constant('own' as const) },
    { weight: 1, arbitrary: fc.constantFrom('outsiders' as const, 'garbage' as const) },
  ),
  alias: fc.boolean(),
  credential: fc.oneof(
    { weight: 14, arbitrary: fc.constant('writer' as const) },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        'reader' as const,
        'outsider' as const,
        'missing' as const,
        'garbage' as const,
        'basic' as const,
      ),
    },
  ),
  garbageCredential: fc.stringMatching(/^[\x21-\x7e]{0,60}$/),
  contentType: fc.oneof(
    { weight: 12, arbitrary: fc.constantFrom('application/json', 'application/json; charset=utf-8') },
    {
      weight: 2,
      arbitrary: fc.constantFrom(
        undefined,
        'text/plain',
        'application/x-www-form-urlencoded',
        'multipart/form-data; boundary=x',
        'application/xml',
        'application/json; charset=latin1',
        'garbage/;;',
      ),
    },
  ),
  body: bodyTextArb,
});
