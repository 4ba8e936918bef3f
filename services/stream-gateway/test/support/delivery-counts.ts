import type { DeliveryEvents } from '../../src/metrics.js';

/** The delivery events of the connections under test, counted. */
export class DeliveryCounts implements DeliveryEvents {
  delivered = 0;
  conflated = 0;
  slowClientCloses = 0;

  onDelivered(): void {
    this.delivered++;
  }

  onConflated(): void {
    this.conflated++;
  }

  onSlowClose(): void {
    this.slowClientCloses++;
  }
}
