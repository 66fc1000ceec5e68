/** Who the control-plane bench's simulated devices are: the same list for the joins the bench makes and the helper that plays them. */

export interface SimDevice {
  deviceId: string;
  ownerId: string;
}

export function simDevices(idPrefix: string, count: number): SimDevice[] {
  return Array.from({ length: count }, (_, i) => ({ deviceId: `${idPrefix}-${i}`, ownerId: `owner-${i % 997}` }));
}
