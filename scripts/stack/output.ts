/**
 * The supervisor's terminal output. When the process that started `npm start` goes away, stdout and
 * stderr become pipes without a reader: a write then fails with EPIPE, asynchronously, as an 'error'
 * event. Unhandled, that event is an uncaught exception whose report is one more write, and so on: the
 * supervisor spun on it and never stopped its children. So write errors mark the output gone and are
 * otherwise dropped; nothing the stack does depends on being heard.
 */
export interface TerminalOutput {
  /** Writes one line while anyone reads; never throws. */
  print(line: string): void;
}

export function terminalOutput(
  out: NodeJS.WriteStream = process.stdout,
  err: NodeJS.WriteStream = process.stderr,
): TerminalOutput {
  let gone = false;
  const dropped = () => {
    gone = true;
  };
  out.on('error', dropped);
  // stderr is written by whatever else runs in this process (tsx, Node's warnings): the same applies.
  err.on('error', () => {});
  return {
    print(line: string) {
      if (gone || out.destroyed || !out.writable) return;
      try {
        out.write(`${line}\n`);
      } catch {
        gone = true;
      }
    },
  };
}
