import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';

/** One .dockerignore line as a matcher of slash-separated paths relative to the context root. */
function patternToRegExp(pattern: string): RegExp {
  let source = '';
  for (let index = 0; index < pattern.length; index++) {
    const char = pattern[index] as string;
    if (char === '*' && pattern[index + 1] === '*') {
      // `**/` matches any number of directories, including none; a trailing `**` anything below.
      const slash = pattern[index + 2] === '/';
      source += slash ? '(?:.*/)?' : '.*';
      index += slash ? 2 : 1;
    } else if (char === '*') source += '[^/]*';
    else if (char === '?') source += '[^/]';
    else source += char.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${source}$`);
}

/**
 * The build context's exclusion rule as Docker and buildah apply it: a path is left out when a pattern
 * matches it or one of its parent directories; the last matching line wins, and `!` lines re-include.
 */
export function dockerignoreFilter(text: string): (path: string) => boolean {
  const rules = text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => {
      const include = line.startsWith('!');
      const pattern = (include ? line.slice(1) : line).replace(/^\/+/, '').replace(/\/+$/, '');
      return { include, regexp: patternToRegExp(pattern) };
    });
  return (path) => {
    const parts = path.split('/');
    let excluded = false;
    for (const rule of rules) {
      for (let depth = 1; depth <= parts.length; depth++) {
        if (rule.regexp.test(parts.slice(0, depth).join('/'))) {
          excluded = !rule.include;
          break;
        }
      }
    }
    return excluded;
  };
}

/**
 * A digest of everything `COPY . .` would send from `root`: each file's path, mode and content (a link's
 * target), skipping what .dockerignore leaves out. Directories that are excluded are not descended into
 * unless a `!` line could re-include something below them.
 */
export async function buildContextDigest(root: string): Promise<string> {
  let ignoreText = '';
  try {
    ignoreText = readFileSync(join(root, '.dockerignore'), 'utf8');
  } catch {
    // no .dockerignore: everything is sent
  }
  const excluded = dockerignoreFilter(ignoreText);
  const mayReinclude = /^\s*!/m.test(ignoreText);
  const hash = createHash('sha256');
  const walk = async (relative: string): Promise<void> => {
    const entries = await readdir(join(root, relative), { withFileTypes: true });
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of entries) {
      const path = relative === '' ? entry.name : `${relative}/${entry.name}`;
      const isExcluded = excluded(path);
      if (entry.isDirectory()) {
        if (!isExcluded || mayReinclude) await walk(path);
        continue;
      }
      if (isExcluded) continue;
      const absolute = join(root, path);
      const stats = await lstat(absolute);
      hash.update(`${path}\0${stats.mode & 0o111 ? 'x' : '-'}\0`);
      hash.update(stats.isSymbolicLink() ? `-> ${await readlink(absolute)}` : await readFile(absolute));
      hash.update('\0');
    }
  };
  await walk('');
  return hash.digest('hex');
}
