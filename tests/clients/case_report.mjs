// What a JavaScript client script got, case by case, printed as one JSON object for the test to check.
export class Report {
  constructor() { this.cases = {}; }

  // Per case: the pictures (choice index, data URL) and anything else the script records, or the error.
  async run(name, test, ...args) {
    this.current = { pictures: [] };
    try {
      await test(this, ...args);
    } catch (error) { // reported, not thrown: the test says which cases must pass
      this.current.error = `${error.name}: ${error.message}`.slice(0, 1500);
    }
    this.cases[name] = this.current;
  }

  picture(choice, dataUrl) { this.current.pictures.push({ choice, data_url: dataUrl }); }

  print() { process.stdout.write(JSON.stringify({ cases: this.cases })); }
}
