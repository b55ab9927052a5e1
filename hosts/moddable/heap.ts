/** XS heap use from the SDK's instrumentation (chunk + slot heap bytes in use). */
import Instrumentation from 'instrumentation';

export function heapUsed(): number | null {
  try {
    return (Instrumentation.get(Instrumentation.map('XS Chunk Heap Used')) ?? 0) + (Instrumentation.get(Instrumentation.map('XS Slot Heap Used')) ?? 0);
  } catch {
    return null;
  }
}
