import type { Compilable, CompiledQuery } from 'kysely';

/** Stands for one row's value of one column while a template is compiled. */
class Slot {
  constructor(
    readonly row: number,
    readonly column: string,
  ) {}
}

/**
 * A placeholder for a value that changes between executions: use it where the query builder takes the
 * value, and fill it in with QueryTemplate.bind. Typed as the value it stands for.
 */
export function slot<T>(row: number, column: string): T {
  return new Slot(row, column) as unknown as T;
}

/**
 * A query built and compiled by Kysely once, then executed many times with new values: on a hot path the
 * builder's work (operation nodes, compilation) is then paid once per query shape, not once per call.
 * Values written as slot(row, column) are parameters taken from `bind`; every other value is constant.
 */
export class QueryTemplate {
  private constructor(private readonly compiled: CompiledQuery) {}

  static compile(query: Compilable): QueryTemplate {
    const compiled = query.compile();
    if (!compiled.parameters.some((parameter) => parameter instanceof Slot)) {
      throw new Error(`query template has no slot: ${compiled.sql}`);
    }
    return new QueryTemplate(compiled);
  }

  /** The query with each slot replaced by value(row, column). */
  bind<R>(value: (row: number, column: string) => unknown): CompiledQuery<R> {
    const parameters = this.compiled.parameters.map((parameter) =>
      parameter instanceof Slot ? value(parameter.row, parameter.column) : parameter,
    );
    return { ...this.compiled, parameters } as CompiledQuery<R>;
  }
}
