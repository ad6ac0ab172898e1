console.log("demo pending")
