/** Globals of the XS runtime the host uses. */
declare function trace(...items: unknown[]): void;
