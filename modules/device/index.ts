/** The device API for users' firmware: see device.ts. */
export { AgentError, Device, defaultDataKind } from './device.js';
export type { ActionHandler, AgentEvent, DataKind, DataValue, DeviceEvent, DeviceOptions, JoinKind, JoinOutcome } from './device.js';
