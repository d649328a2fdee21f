"""The situation an alert is in, as the logs prove it: state, deadlines, the board, and CAP 1.2 export."""
