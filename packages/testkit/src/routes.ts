/** A route a Fastify app registered: its URL (`:param` form) and method. */
export interface RegisteredRoute {
  url: string;
  method: string;
}

const LINE = /^((?:│ {3}| {4})*)(?:├── |└── )(.*?)(?: \(([^)]+)\))?$/;

/**
 * Every route of a Fastify app, read from `app.printRoutes({ commonPrefix: false })` (Fastify keeps no
 * public route list): each tree line is one URL segment at a depth of four characters per level.
 */
export function registeredRoutes(printed: string): RegisteredRoute[] {
  const segments: string[] = [];
  const routes: RegisteredRoute[] = [];
  for (const line of printed.split('\n')) {
    const match = LINE.exec(line);
    if (!match) continue;
    const depth = (match[1] ?? '').length / 4;
    segments.length = depth;
    segments.push(match[2] ?? '');
    for (const method of (match[3] ?? '').split(', ').filter(Boolean)) {
      routes.push({ url: segments.join(''), method });
    }
  }
  return routes;
}
