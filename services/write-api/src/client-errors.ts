import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';

/**
 * Errors Node raises before a request reaches Fastify (a request not received within
 * REQUEST_TIMEOUT_MS, oversized headers, bytes that are not HTTP), answered with the API's error body
 * instead of Fastify's own, then the connection is closed: its state is unknown.
 */
export function clientErrorHandler(error: Error & { code?: string }, socket: Socket): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const [status, code, detail] =
    error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? [408, 'request_timeout', 'The request was not received in time (REQUEST_TIMEOUT_MS).']
      : error.code === 'HPE_HEADER_OVERFLOW'
        ? [431, 'request_header_fields_too_large', 'The request headers are too large.']
        : [400, 'bad_request', 'The request is not valid HTTP.'];
  const body = JSON.stringify({ type: 'invalid_request', code, detail, attr: null });
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
  }
  socket.destroy();
}
