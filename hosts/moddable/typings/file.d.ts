export class File {
  constructor(path: string, write?: boolean);
  read(type: typeof ArrayBuffer | typeof String, count?: number): ArrayBuffer | string;
  write(...items: (ArrayBuffer | string)[]): void;
  close(): void;
  readonly length: number;
  position: number;
  static delete(path: string): boolean;
  static exists(path: string): boolean;
}
