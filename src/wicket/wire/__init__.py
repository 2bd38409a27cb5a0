"""MongoDB wire protocol: a sans-IO codec shared by localdocdb and the Wicket agent."""
