declare class NeoPixel {
  constructor(options: { length: number; pin: number; order?: string });
  makeRGB(r: number, g: number, b: number): number;
  setPixel(index: number, color: number): void;
  fill(color: number, index?: number, count?: number): void;
  update(): void;
  brightness: number;
  readonly length: number;
}
export default NeoPixel;
