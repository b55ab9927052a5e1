declare class WiFi {
  constructor(options: { ssid: string; password?: string }, callback: (message: string, value?: unknown) => void);
  close(): void;
  static connect(options?: { ssid: string; password?: string }): void;
  static mode: number;
  static readonly gotIP: string;
  static readonly connected: string;
  static readonly disconnected: string;
}
export default WiFi;
