declare class Poco {
  constructor(pixelsOut: unknown, options?: Record<string, unknown>);
  readonly width: number;
  readonly height: number;
  begin(x?: number, y?: number, width?: number, height?: number): void;
  end(): void;
  makeColor(r: number, g: number, b: number): number;
  fillRectangle(color: number, x: number, y: number, width: number, height: number): void;
}
export default Poco;
