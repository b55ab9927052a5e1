declare class Preference {
  static get(domain: string, key: string): boolean | number | string | ArrayBuffer | undefined;
  static set(domain: string, key: string, value: boolean | number | string | ArrayBuffer): void;
  static delete(domain: string, key: string): void;
}
export default Preference;
