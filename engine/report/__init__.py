"""Reports made from a run: clearing statements (清算单) as .xlsx and printable HTML, and the fund summary."""
