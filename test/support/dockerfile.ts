/**
 * A Dockerfile read as stages of instructions (line continuations joined, comments dropped), with each
 * FROM's global build ARGs replaced by their defaults.
 */
export interface DockerStage {
  from: string;
  name: string | undefined;
  instructions: { keyword: string; args: string }[];
}

export function parseDockerfile(text: string): DockerStage[] {
  const logicalLines: string[] = [];
  let pending = '';
  for (const rawLine of text.split('\n')) {
    const line = rawLine.trim();
    if (pending === '' && (line === '' || line.startsWith('#'))) continue;
    if (line.startsWith('#')) continue;
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1)} `;
      continue;
    }
    logicalLines.push(pending + line);
    pending = '';
  }
  const stages: DockerStage[] = [];
  // ARGs before the first FROM parameterise the FROM lines; their defaults are what a plain build uses.
  const globalArgs = new Map<string, string>();
  const expand = (text: string) =>
    text.replace(/\$\{(\w+)\}|\$(\w+)/g, (whole, braced, bare) => globalArgs.get(braced ?? bare) ?? whole);
  for (const line of logicalLines) {
    const [keyword = '', ...rest] = line.split(/\s+/);
    const args = rest.join(' ');
    if (keyword.toUpperCase() === 'FROM') {
      const match = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args);
      if (!match?.[1]) throw new Error(`cannot read FROM ${args}`);
      stages.push({ from: expand(match[1]), name: match[2], instructions: [] });
      continue;
    }
    const stage = stages.at(-1);
    if (!stage && keyword.toUpperCase() === 'ARG') {
      const [name = '', value = ''] = args.split('=');
      globalArgs.set(name, value);
      continue;
    }
    if (!stage) throw new Error(`instruction before the first FROM: ${line}`);
    stage.instructions.push({ keyword: keyword.toUpperCase(), args });
  }
  return stages;
}
