import * as EventLog from "../src/server/EventLog.js"
import { eventLogContract } from "./support/eventLogContract.js"

eventLogContract("EventLog memory", EventLog.layerMemory)
