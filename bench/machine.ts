import { availableParallelism, loadavg } from 'node:os';
import { round } from './stats.js';

/** The machine a result was measured on, with its load at the start and at the end of the run. */
export interface Machine {
  cores: number;
  node: string;
  loadAverageAtStart: number[];
  loadAverageAtEnd: number[];
}

export const loadAverage = () => loadavg().map((value) => round(value, 2));

export function machine(loadAverageAtStart: number[]): Machine {
  return {
    cores: availableParallelism(),
    node: process.version,
    loadAverageAtStart,
    loadAverageAtEnd: loadAverage(),
  };
}
