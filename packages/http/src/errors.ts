import { ApiError, apiErrors, MAX_BODY_BYTES } from '@wizard-stream/contracts';
import type { FastifyError, FastifyReply } from 'fastify';
import fp from 'fastify-plugin';

/** A service's own mapping of failures only it knows (an unreachable database), tried before the rest. */
export type ErrorClassifier = (error: unknown) => ApiError | undefined;

export interface ErrorsPluginOptions {
  classify?: ErrorClassifier;
}

export function sendApiError(reply: FastifyReply, error: ApiError): FastifyReply {
  return reply.code(error.statusCode).headers(error.headers).type('application/json').send(error.body);
}

/**
 * The one mapping of every failure to the documented status and `{type, code, detail, attr}` body: an
 * ApiError as it is, Fastify's own 4xx with its code kept (lower-cased), anything else a 500.
 */
export function toApiError(error: FastifyError, classify?: ErrorClassifier): ApiError {
  if (error instanceof ApiError) return error;
  const classified = classify?.(error);
  if (classified) return classified;
  switch (error.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return apiErrors.payloadTooLarge(MAX_BODY_BYTES);
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

/** The error and not-found handlers of a service: every answer that is not a success has the API's error body. */
export const errorsPlugin = fp<ErrorsPluginOptions>(
  async (app, { classify }) => {
    app.setErrorHandler((error: FastifyError, request, reply) => {
      const apiError = toApiError(error, classify);
      // An ApiError is an answer the service chose; anything else that ends in a 5xx is a fault to log.
      if (apiError.statusCode >= 500 && !(error instanceof ApiError)) {
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
