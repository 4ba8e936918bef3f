import { connect } from 'node:net';

export interface PlainNatsAttempt {
  /** The server's INFO, as it greets every client before TLS. */
  info: { tls_required?: boolean; auth_required?: boolean };
  /** Whatever came back after an anonymous plain-text CONNECT and PING, until the server closed. */
  reply: string;
}

/**
 * An anonymous client without TLS: reads the INFO, sends CONNECT {} and PING in plain text, and collects
 * the answer until the server closes the connection (a server that wants TLS never answers PONG).
 */
export function plainNatsConnect(host: string, port: number, timeoutMs = 10_000): Promise<PlainNatsAttempt> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    let received = '';
    let info: PlainNatsAttempt['info'] | undefined;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`${host}:${port} kept a plain-text anonymous connection open for ${timeoutMs} ms`));
    }, timeoutMs);
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1');
      if (info !== undefined) return;
      const end = received.indexOf('\r\n');
      if (end === -1) return;
      const line = received.slice(0, end);
      if (!line.startsWith('INFO ')) {
        socket.destroy();
        reject(new Error(`${host}:${port} greeted with ${line.slice(0, 200)} instead of INFO`));
        return;
      }
      info = JSON.parse(line.slice(5));
      received = received.slice(end + 2);
      socket.write('CONNECT {"verbose":false,"pedantic":false}\r\nPING\r\n');
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      if (info === undefined) reject(new Error(`${host}:${port} closed before its INFO`));
      else resolve({ info, reply: received });
    });
  });
}
