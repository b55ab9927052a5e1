/** SNTP client: the callback gets SNTP.time with the time in seconds since 1970, or retry / error. */
declare class SNTP {
  constructor(options: { host: string }, callback: (message: number, value?: number) => void);
  static readonly time: number;
  static readonly retry: number;
  static readonly error: number;
}
export default SNTP;
