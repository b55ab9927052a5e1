/** Raw flash partitions (ESP-IDF data partitions by label). */
declare class Flash {
  constructor(partition: string);
  erase(sector: number): void;
  read(offset: number, byteLength: number): ArrayBuffer;
  write(offset: number, byteLength: number, buffer: ArrayBuffer): void;
  readonly byteLength: number;
  readonly blockSize: number;
}
export default Flash;
