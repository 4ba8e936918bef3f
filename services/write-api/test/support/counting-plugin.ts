import type {
  KyselyPlugin,
  PluginTransformQueryArgs,
  PluginTransformResultArgs,
  QueryResult,
  RootOperationNode,
  UnknownRow,
} from 'kysely';

/**
 * Counts the SELECT statements that reach the database and read a table (the real database runs them;
 * this only watches them go by): how tests prove that a refused request cost no lookup.
 */
export class SelectCounter implements KyselyPlugin {
  count = 0;
  private readonly marker: string;

  constructor(table: string) {
    this.marker = JSON.stringify(table);
  }

  transformQuery(args: PluginTransformQueryArgs): RootOperationNode {
    if (args.node.kind === 'SelectQueryNode' && JSON.stringify(args.node).includes(this.marker)) {
      this.count += 1;
    }
    return args.node;
  }

  async transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    return args.result;
  }
}
