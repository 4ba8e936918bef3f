/**
 * A write-api process that dies the hard way right after its first session commit and before the
 * publish: what a crash (OOM kill, node eviction) between the two looks like. Env as src/main.ts.
 */
import { loadWriteApiConfig, startWriteApi } from '../../src/index.js';

await startWriteApi(loadWriteApiConfig(process.env), {
  afterCommit: () => {
    process.kill(process.pid, 'SIGKILL');
  },
});
