/**
 * XS heap use from the SDK's instrumentation (chunk + slot heap bytes in use), or null where there is none:
 * the SDK compiles instrumentation only into debug (-d) and instrumented (-i) builds, and a release build's
 * `Instrumentation.get` gives undefined (0 would read as "nothing used").
 */
import Instrumentation from 'instrumentation';

export function heapUsed(): number | null {
  try {
    const chunk = Instrumentation.get(Instrumentation.map('XS Chunk Heap Used'));
    const slot = Instrumentation.get(Instrumentation.map('XS Slot Heap Used'));
    if (typeof chunk !== 'number' || typeof slot !== 'number') return null;
    return chunk + slot;
  } catch {
    return null;
  }
}
