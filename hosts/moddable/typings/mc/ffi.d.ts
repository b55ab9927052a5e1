/** Native functions declared in the manifest's `ffi.functions`, as methods of an instance. */
declare class FFI {
  constructor();
}
export default FFI;
