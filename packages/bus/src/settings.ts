import type { BusOptions } from './connection.js';

/** The NATS settings of a service's config: serviceEnv's NATS_* variables after camelCaseKeys. */
export interface NatsSettings {
  natsUrl: string;
  natsUser?: string | undefined;
  natsPassword?: string | undefined;
  natsTlsCaFile?: string | undefined;
  natsTlsCertFile?: string | undefined;
  natsTlsKeyFile?: string | undefined;
}

/** Where and as whom a service connects: the part of BusOptions its configuration decides. */
export function busOptionsOf(settings: NatsSettings): Pick<BusOptions, 'url' | 'user' | 'password' | 'tls'> {
  return {
    url: settings.natsUrl,
    user: settings.natsUser,
    password: settings.natsPassword,
    tls: settings.natsTlsCaFile
      ? {
          caFile: settings.natsTlsCaFile,
          certFile: settings.natsTlsCertFile,
          keyFile: settings.natsTlsKeyFile,
        }
      : undefined,
  };
}
