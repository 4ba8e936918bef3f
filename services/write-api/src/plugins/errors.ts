import { ApiError, apiErrors } from '@wizard-stream/contracts';
import type { FastifyError, FastifyInstance, FastifyReply } from 'fastify';
import fp from 'fastify-plugin';
import { isDatabaseUnavailable } from '../db-errors.js';

const DATABASE_RETRY_AFTER_SECONDS = 5;

export function sendApiError(reply: FastifyReply, error: ApiError): FastifyReply {
  return reply.code(error.statusCode).headers(error.headers).type('application/json').send(error.body);
}

/** Maps every failure to the documented status and `{type, code, detail, attr}` body. */
export function toApiError(error: FastifyError): ApiError {
  if (error instanceof ApiError) return error;
  if (isDatabaseUnavailable(error)) {
    return apiErrors.unavailable('The database is unavailable; retry shortly.', DATABASE_RETRY_AFTER_SECONDS);
  }
  switch (error.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return apiErrors.payloadTooLarge(1024 * 1024);
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return apiErrors.unsupportedMediaType(String(error.message.split('"')[1] ?? ''));
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return apiErrors.invalidInput('The request body is empty.');
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return apiErrors.invalidInput('Content-Length does not match the body.');
  }
  if (error instanceof SyntaxError || error.code === 'FST_ERR_CTP_INVALID_JSON_BODY') {
    return apiErrors.invalidInput(`Malformed JSON: ${error.message}`);
  }
  if (error.statusCode && error.statusCode >= 400 && error.statusCode < 500) {
    return new ApiError(error.statusCode, {
      type: 'invalid_request',
      code: error.code?.toLowerCase() ?? 'invalid_request',
      detail: error.message,
      attr: null,
    });
  }
  return apiErrors.internal();
}

export const errorsPlugin = fp(
  async (app: FastifyInstance) => {
    app.setErrorHandler((error: FastifyError, request, reply) => {
      const apiError = toApiError(error);
      if (apiError.statusCode >= 500) {
        request.log.error({ err: error }, 'request failed');
      }
      return sendApiError(reply, apiError);
    });
    app.setNotFoundHandler((request, reply) =>
      sendApiError(reply, apiErrors.notFound(`No route for ${request.method} ${request.url.split('?')[0]}.`)),
    );
  },
  { name: 'errors' },
);
